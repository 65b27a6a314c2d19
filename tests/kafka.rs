//! Kafka on both sides, against the private broker (KRaft, transactions on): MariaDB → Kafka
//! in every format → MariaDB and PostgreSQL under a randomized workload with SIGKILLs on both
//! legs, each committed change seen once and in order by a `read_committed` consumer; zombie
//! fencing; the all-types table through ferry-json and back; `${field}` routing of one topic
//! into three tables; bad messages in the dirty archive with their place.

mod common;

use common::kafka::*;
use common::mysql::*;
use common::pg::{forget_slot, fresh_src_schema, src_exec, src_url};
use common::sql::{expected, Target};
use common::*;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `counters`: each update adds 1 to `v`, so a key's messages must carry `v` = k, k+1, k+2, …
/// (a duplicate or a lost change breaks the run); deleted keys never come back.
fn counters(db: &str) {
    exec(&[
        &format!("USE {db}"),
        &format!("CREATE TABLE {db}.counters (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(20))"),
        &format!("INSERT INTO {db}.counters SELECT seq, 0, 'init' FROM seq_1_to_2000"),
    ]);
}

fn counters_workload(db: &str) {
    let mut rnd = common::seeded_rng("counters");
    let mut stmts = Vec::new();
    for i in 0..400u64 {
        let (a, b, c) = (201 + rnd() % 1800, 201 + rnd() % 1800, 201 + rnd() % 1800);
        stmts.push(format!("UPDATE {db}.counters SET v = v + 1, note = 'u{i}' WHERE id IN ({a}, {b}, {c})"));
        stmts.push(format!("INSERT INTO {db}.counters VALUES ({}, 0, 'new')", 10_000 + i));
        if i < 200 {
            stmts.push(format!("DELETE FROM {db}.counters WHERE id = {}", i + 1));
        }
        if i % 7 == 0 {
            stmts.push(format!(
                "BEGIN; UPDATE {db}.counters SET v = v + 1 WHERE id = {}; UPDATE {db}.counters SET v = v + 1 WHERE id = {}; COMMIT",
                10_000 + i,
                201 + rnd() % 1800
            ));
        }
    }
    for chunk in stmts.chunks(10) {
        exec(&chunk.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// (op, row) of a message of `format`: `d` for deletes; `None` for tombstones.
fn op_and_row(format: &str, value: &[u8]) -> (String, Json) {
    let m: Json = serde_json::from_slice(value).unwrap();
    match format {
        "debezium-json" => {
            let op = m["op"].as_str().unwrap().to_string();
            let row = if op == "d" { m["before"].clone() } else { m["after"].clone() };
            (op, row)
        }
        "canal-json" => {
            let op = match m["type"].as_str().unwrap() {
                "DELETE" => "d",
                "UPDATE" => "u",
                _ => "c",
            };
            (op.into(), m["data"][0].clone())
        }
        "maxwell-json" => {
            let op = match m["type"].as_str().unwrap() {
                "delete" => "d",
                "update" => "u",
                _ => "c",
            };
            (op.into(), m["data"].clone())
        }
        _ => {
            let op = match m["op"].as_str().unwrap() {
                "delete" => "d",
                "update" => "u",
                _ => "c",
            };
            let row = if op == "d" { m["before"].clone() } else { m["after"].clone() };
            (op.into(), row)
        }
    }
}

fn int(v: &Json) -> i64 {
    match v {
        Json::Number(n) => n.as_i64().unwrap(),
        Json::String(s) => s.parse().unwrap(),
        other => panic!("not an integer: {other}"),
    }
}

/// Each key's messages on the counters topic: `v` rises by exactly 1 from message to message,
/// nothing follows a delete, and the last state is the source's.
fn assert_each_change_once_in_order(format: &str, topic: &str, db: &str) {
    let msgs = read_topic(topic);
    assert!(!msgs.is_empty(), "{topic} is empty");
    let mut per_key: BTreeMap<i64, Vec<(String, i64, i32)>> = BTreeMap::new();
    for m in &msgs {
        let Some(v) = &m.value else { continue };
        let (op, row) = op_and_row(format, v);
        per_key.entry(int(&row["id"])).or_default().push((op, int(&row["v"]), m.partition));
    }
    let (_, rows) = read_table(db, "counters");
    let source: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (ferry_operators::Value::Int(id), ferry_operators::Value::Int(v)) => (*id, *v),
            other => panic!("{other:?}"),
        })
        .collect();
    for (id, seq) in &per_key {
        assert!(seq.iter().all(|(_, _, p)| *p == seq[0].2), "key {id} is in more than one partition");
        for w in seq.windows(2) {
            assert!(w[0].0 != "d", "key {id}: a message after its delete: {seq:?}");
            if w[1].0 != "d" {
                assert_eq!(w[1].1, w[0].1 + 1, "key {id}: v must rise by 1 per change (a duplicate or a gap): {seq:?}");
            }
        }
        let (last_op, last_v, _) = seq.last().unwrap();
        match source.get(id) {
            Some(v) => assert!(last_op != "d" && last_v == v, "key {id}: last message {seq:?}, source has v={v}"),
            None => assert_eq!(last_op, "d", "key {id} is gone at the source but its last message is {seq:?}"),
        }
    }
    for id in source.keys() {
        assert!(per_key.contains_key(id), "key {id} of the source has no message");
    }
}

fn assert_equal_to_source(target: Target, src: &str, dst: &str, tables: &[&str]) {
    for t in tables {
        let (schema, rows) = read_table(src, t);
        let want = expected(&schema, &rows);
        let got = target.rows(dst, t, &schema);
        assert_eq!(got.len(), want.len(), "{dst}.{t}: rows in the target vs the source");
        let diff = got.iter().zip(&want).find(|(g, w)| g != w);
        assert!(got == want, "{dst}.{t} differs from the source; first: {diff:?}");
    }
}

fn through_kafka_ends_equal(format: &str, killed: Target, other: Target) {
    let tag = format.trim_end_matches("-json");
    let src = format!("kfk_{tag}");
    // Topics of this run only (the broker keeps earlier runs' topics).
    let topics = format!("kfk_{tag}_{}", nonce());
    items_and_pairs(&src);
    counters(&src);
    let dir = workdir();
    let brokers = brokers();
    let leg1 = format!(
        "task: kfk1-{tag}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  chunk_rows: 2000\n\
         target:\n  type: kafka\n  brokers: {brokers}\n  format: {format}\n  topic: '{topics}.${{table_name_di_src}}'\n  partitions: 3\n\
         tables:\n  include: ['{src}\\..*']\nsemantics: exactly-once\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state1\n",
        main_url()
    );
    let p1 = write_plan(dir.path(), "leg1.yaml", &leg1);
    let writer = std::thread::spawn({
        let src = src.clone();
        move || {
            counters_workload(&src);
            items_workload(&src, 20_000, "'new'");
        }
    });
    let kills = run_with_kills(dir.path(), &p1, &[("FERRY_FAULT_MANIFEST_DELAY_MS", "400")]);
    writer.join().unwrap();
    // The runs stopped where the binlog stood when they started; catch up with the rest.
    ok(&run_in(dir.path(), &["run", "-q", &p1]));
    eprintln!("leg 1: {kills} kills");
    assert_each_change_once_in_order(format, &format!("{topics}.counters"), &src);
    for (target, kill) in [(killed, true), (other, false)] {
        let dst = format!("kfk_{tag}_{}", target.tag());
        target.fresh_namespace(&dst);
        for t in ["items", "pairs", "counters"] {
            let (schema, _) = read_table(&src, t);
            target.create_table(&dst, t, &schema);
        }
        let leg2 = format!(
            "task: kfk2-{tag}-{}\nsource:\n  type: kafka\n  brokers: {brokers}\n  topic_pattern: '{topics}\\..*'\n  format: {format}\n  bounded: true\n\
             target:\n{}tables:\n  include: ['{src}\\..*']\nsemantics: exactly-once\nroute:\n  database: {dst}\n\
             runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state2-{}\n",
            target.tag(),
            target.plan_section(),
            target.tag()
        );
        let p2 = write_plan(dir.path(), &format!("leg2-{}.yaml", target.tag()), &leg2);
        if kill {
            let kills = run_with_kills(dir.path(), &p2, &[("FERRY_FAULT_MANIFEST_DELAY_MS", "400")]);
            eprintln!("leg 2 into {dst}: {kills} kills");
        } else {
            ok(&run_in(dir.path(), &["run", "-q", &p2]));
        }
        assert_equal_to_source(target, &src, &dst, &["items", "pairs", "counters"]);
    }
}

#[test]
fn debezium_json_through_kafka_into_mariadb_and_postgres_survives_sigkills_exactly_once() {
    through_kafka_ends_equal("debezium-json", Target::Maria, Target::Pg);
}

#[test]
fn canal_json_through_kafka_into_postgres_and_mariadb_survives_sigkills_exactly_once() {
    through_kafka_ends_equal("canal-json", Target::Pg, Target::Maria);
}

#[test]
fn maxwell_json_through_kafka_into_mariadb_and_postgres_survives_sigkills_exactly_once() {
    through_kafka_ends_equal("maxwell-json", Target::Maria, Target::Pg);
}

#[test]
fn ferry_json_through_kafka_into_postgres_and_mariadb_survives_sigkills_exactly_once() {
    through_kafka_ends_equal("ferry-json", Target::Pg, Target::Maria);
}

#[test]
fn a_second_process_of_the_task_fences_the_first_which_stops_with_a_clear_message() {
    let (a, b) = (workdir(), workdir());
    let topic = format!("kfk_zombie_{}", nonce());
    let text = format!(
        "task: kfk-zombie\nsource:\n  type: datagen\n  seed: 3\n  databases: 1\n  tables_per_database: 1\n  changes: 100000000\n  rate: 3000\n\
         target:\n  type: kafka\n  brokers: {}\n  topic: {topic}\nsemantics: exactly-once\n\
         runtime:\n  checkpoint_interval: 200ms\n  state: ./state\n",
        brokers()
    );
    let pa = write_plan(a.path(), "plan.yaml", &text);
    let pb = write_plan(b.path(), "plan.yaml", &text);
    let mut first = KillOnDrop(
        ferry().current_dir(a.path()).args(["run", "-q", &pa]).stderr(std::process::Stdio::piped()).spawn().unwrap(),
    );
    let start = Instant::now();
    while read_topic(&topic).is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!read_topic(&topic).is_empty(), "the first process committed nothing");
    let _second = KillOnDrop(ferry().current_dir(b.path()).args(["run", "-q", &pb]).spawn().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = first.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the first process was not fenced within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(first.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "the fenced process must fail");
    assert!(err.contains("fenced") && err.contains("kfk-zombie"), "no clear message: {err}");
    assert!(!err.contains("restarting"), "a fenced process must not restart: {err}");
}

#[test]
fn the_all_types_table_goes_through_ferry_json_and_back_unchanged() {
    let src = "kfk_types";
    fresh_db(src);
    exec(&[&format!("USE {src}"), ALL_TYPES, MIN_ROW, MAX_ROW, NULL_ROW]);
    let dir = workdir();
    let brokers = brokers();
    let topic = format!("kfk_types_{}", nonce());
    let leg1 = format!(
        "task: kfk-types1\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\ntarget:\n  type: kafka\n  brokers: {brokers}\n  format: ferry-json\n  topic: {topic}\n\
         tables:\n  include: ['{src}\\..*']\nsemantics: exactly-once\nruntime:\n  state: ./state1\n",
        main_url()
    );
    ok(&run_in(dir.path(), &["run", "-q", &write_plan(dir.path(), "leg1.yaml", &leg1)]));
    let target = Target::Maria;
    let dst = "kfk_types_m";
    target.fresh_namespace(dst);
    // The target table is created from the types the messages carry.
    let leg2 = format!(
        "task: kfk-types2\nsource:\n  type: kafka\n  brokers: {brokers}\n  topics: [{topic}]\n  format: ferry-json\n  bounded: true\n\
         target:\n{}route:\n  database: {dst}\nsemantics: exactly-once\nruntime:\n  state: ./state2\n",
        target.plan_section()
    );
    let out = ok(&run_in(dir.path(), &["run", &write_plan(dir.path(), "leg2.yaml", &leg2)]));
    assert!(out.contains(", 0 dirty,"), "{out}");
    // Both sides read back through ferry's own MariaDB decoder, value by value. JSON documents
    // arrive re-serialized (the same document; whitespace between tokens is not kept).
    let normalized = |db: &str| {
        let (schema, mut rows) = read_table(db, "all_types");
        for r in rows.iter_mut() {
            for v in r.iter_mut() {
                if let ferry_operators::Value::Json(s) = v {
                    *s = serde_json::from_str::<Json>(s).unwrap().to_string();
                }
            }
        }
        rows.sort_by_key(|r| format!("{:?}", r[0]));
        (schema.columns.iter().map(|c| (c.name.clone(), c.ty.clone())).collect::<Vec<_>>(), rows)
    };
    let (src_cols, src_rows) = normalized(src);
    let (dst_cols, dst_rows) = normalized(dst);
    assert_eq!(src_rows.len(), 3);
    for (s, d) in src_rows.iter().zip(&dst_rows) {
        for (i, (a, b)) in s.iter().zip(d).enumerate() {
            assert_eq!(a, b, "column {} ({:?} → {:?})", src_cols[i].0, src_cols[i].1, dst_cols[i].1);
        }
    }
    assert_eq!(src_rows, dst_rows);
}

#[test]
fn one_topic_routes_rows_into_three_tables_by_a_field_of_the_message() {
    let topic = format!("kfk_route_{}", nonce());
    let mut msgs = Vec::new();
    for i in 0..30 {
        let kind = ["a", "b", "c"][i % 3];
        msgs.push(format!(r#"{{"kind":"{kind}","id":{i},"name":"n{i}"}}"#));
    }
    let pairs: Vec<(Option<&str>, Option<&str>)> = msgs.iter().map(|m| (None, Some(m.as_str()))).collect();
    produce(&topic, &pairs);
    let target = Target::Maria;
    target.fresh_namespace("kfk_routed");
    let dir = workdir();
    let decl = |t: &str| {
        format!("    routed.{t}: {{columns: {{kind: 'varchar(5)', id: bigint, name: 'varchar(20)'}}, key: [id]}}\n")
    };
    let text = format!(
        "task: kfk-route\nsource:\n  type: kafka\n  brokers: {}\n  topics: [{topic}]\n  format: json\n  database: routed\n  table: '${{kind}}'\n\
         bounded: true\n  tables:\n{}{}{}target:\n{}route:\n  database: kfk_routed\nruntime:\n  state: ./state\n",
        brokers(),
        decl("a"),
        decl("b"),
        decl("c"),
        target.plan_section()
    )
    .replace("\nbounded: true", "\n  bounded: true");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let out = ok(&run_in(dir.path(), &["run", &p]));
    assert!(out.contains("30 rows out"), "{out}");
    // Without the declarations, a sample of the topic gives the same three tables, with the
    // columns the values imply, shown by `preview`.
    let inferred = text[..text.find("  tables:\n").unwrap()].to_string() + &text[text.find("target:\n").unwrap()..];
    let pi = write_plan(dir.path(), "inferred.yaml", &inferred);
    let preview: Json = serde_json::from_slice(&run_in(dir.path(), &["preview", "--json", &pi]).stdout).unwrap();
    let tables: Vec<&str> = preview.as_array().unwrap().iter().map(|r| r["source"].as_str().unwrap()).collect();
    assert_eq!(tables, ["routed.a", "routed.b", "routed.c"], "{preview}");
    let cols: Vec<(String, String)> = preview[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["type"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(cols, [("kind".into(), "TEXT".into()), ("id".into(), "BIGINT".into()), ("name".into(), "TEXT".into())]);
    let schema = ferry_operators::TableSchema {
        name: ferry_operators::TableName::new("kfk_routed", "x"),
        columns: vec![
            ferry_operators::Column::new("id", ferry_operators::ColumnType::Int { bits: 64, unsigned: false }, false),
            ferry_operators::Column::new(
                "kind",
                ferry_operators::ColumnType::String { max_chars: Some(5), fixed: false },
                true,
            ),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    };
    for (k, kind) in ["a", "b", "c"].iter().enumerate() {
        let rows: Vec<Vec<ferry_operators::Value>> = (0..30i64)
            .filter(|i| *i as usize % 3 == k)
            .map(|i| vec![ferry_operators::Value::Int(i), ferry_operators::Value::Text(kind.to_string())])
            .collect();
        assert_eq!(target.rows("kfk_routed", kind, &schema), expected(&schema, &rows), "kfk_routed.{kind}");
    }
}

#[test]
fn messages_that_cannot_be_read_go_to_the_dirty_archive_with_topic_partition_and_offset() {
    let topic = format!("kfk_dirty_{}", nonce());
    produce(
        &topic,
        &[
            (
                None,
                Some(
                    r#"{"op":"insert","database":"dd","table":"t","key":["id"],"types":{"id":{"Int":{"bits":64,"unsigned":false}}},"before":null,"after":{"id":1}}"#,
                ),
            ),
            (None, Some("this is not json")),
            (
                None,
                Some(
                    r#"{"op":"insert","database":"dd","table":"t","key":["id"],"before":null,"after":{"id":"twelve"}}"#,
                ),
            ),
            (None, Some(r#"{"op":"insert","database":"dd","table":"t","key":["id"],"before":null,"after":{"id":3}}"#)),
        ],
    );
    let dir = workdir();
    let text = format!(
        "task: kfk-dirty\nsource:\n  type: kafka\n  brokers: {}\n  topics: [{topic}]\n  format: ferry-json\n  bounded: true\n\
         target:\n  type: files\n  path: ./out\nruntime:\n  state: ./state\n",
        brokers()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let out = ok(&run_in(dir.path(), &["run", &p]));
    assert!(out.contains("2 rows out"), "{out}");
    // The table and its key come from the messages' own types and key fields.
    let preview: Json = serde_json::from_slice(&run_in(dir.path(), &["preview", "--json", &p]).stdout).unwrap();
    assert_eq!(
        preview[0]["columns"],
        serde_json::json!([{"name": "id", "type": "BIGINT", "nullable": false}]),
        "{preview}"
    );
    assert_eq!(preview[0]["key"]["columns"], serde_json::json!(["id"]));
    let shown = ok(&run_in(dir.path(), &["dirty", "show", &p]));
    assert!(shown.contains(&format!("{topic}/0@1")) && shown.contains("not JSON"), "{shown}");
    assert!(shown.contains(&format!("{topic}/0@2")) && shown.contains("column `id`"), "{shown}");
}

#[test]
fn check_refuses_kafka_settings_that_cannot_work_and_names_the_key() {
    let dir = workdir();
    let b = brokers();
    let target = |extra: &str| {
        format!(
            "task: kfk-check\nsource:\n  type: datagen\n  changes: 10\ntarget:\n  type: kafka\n{extra}\
             tables:\n  exclude: ['.*\\.events']\nsemantics: exactly-once\n"
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("no brokers", target("  format: canal-json\n"), "`brokers` is required"),
        ("a field no table has", target(&format!("  brokers: {b}\n  topic: 'x.${{nope}}'\n")), "unknown variable `${nope}`"),
        (
            "an illegal topic name",
            target(&format!("  brokers: {b}\n  topic: '${{db_name_di_src}}/${{table_name_di_src}}'\n")),
            "has `/`",
        ),
        (
            "a transaction timeout above the broker's",
            target(&format!("  brokers: {b}\n  transaction_timeout: 30m\n")),
            "exceeds the broker's transaction.max.timeout.ms",
        ),
        ("an unreachable broker", target("  brokers: 127.0.0.1:1\n"), "target.brokers"),
        (
            "a source topic that does not exist",
            format!(
                "task: kfk-check\nsource:\n  type: kafka\n  brokers: {b}\n  topics: [kfk_no_such_topic]\n  format: json\n\
                 target:\n  type: files\n  path: ./out\n"
            ),
            "topic kfk_no_such_topic does not exist",
        ),
        (
            "a source without a format",
            format!("task: kfk-check\nsource:\n  type: kafka\n  brokers: {b}\n  topics: [t]\ntarget:\n  type: files\n  path: ./out\n"),
            "`format` is required",
        ),
    ];
    for (case, text, want) in cases {
        let p = write_plan(dir.path(), "plan.yaml", &text);
        let out = run_in(dir.path(), &["check", &p]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {err}");
        assert!(err.contains(want) && err.contains("plan.yaml:"), "{case}: want `{want}` with its place, got: {err}");
    }
}

#[test]
fn a_schema_change_becomes_the_formats_ddl_message_between_the_rows_before_and_after_it() {
    let src = "kfk_ddl";
    fresh_db(src);
    exec(&[
        &format!("CREATE TABLE {src}.t (id INT PRIMARY KEY, v INT)"),
        &format!("INSERT INTO {src}.t VALUES (1, 1)"),
    ]);
    let dir = workdir();
    let n = nonce();
    let plan = |format: &str| {
        format!(
            "task: kfk-ddl-{format}\nsource:\n  type: mariadb\n  name: srv\n  url: {}\n  bounded: true\ntarget:\n  type: kafka\n  brokers: {}\n  format: {format}\n\
             topic: 'kfk_ddl_{n}_{format}.${{table_name_di_src}}'\n  schema_topic: 'kfk_ddl_{n}_{format}_schema'\n\
             tables:\n  include: ['{src}\\..*']\nsemantics: exactly-once\nruntime:\n  state: ./state-{format}\n",
            main_url(),
            brokers()
        )
        .replace("\ntopic:", "\n  topic:")
    };
    let formats = ["canal-json", "debezium-json"];
    let paths: Vec<String> = formats.iter().map(|f| write_plan(dir.path(), &format!("{f}.yaml"), &plan(f))).collect();
    for p in &paths {
        ok(&run_in(dir.path(), &["run", "-q", p]));
    }
    exec(&[
        &format!("INSERT INTO {src}.t VALUES (2, 2)"),
        &format!("ALTER TABLE {src}.t ADD COLUMN note VARCHAR(10)"),
        &format!("INSERT INTO {src}.t VALUES (3, 3, 'after')"),
    ]);
    for p in &paths {
        ok(&run_in(dir.path(), &["run", "-q", p]));
    }
    // Canal: the DDL is an `isDdl` message in the table's topic, between the two inserts.
    let canal: Vec<Json> = read_topic(&format!("kfk_ddl_{n}_canal-json.t"))
        .iter()
        .map(|m| serde_json::from_slice(m.value.as_ref().unwrap()).unwrap())
        .collect();
    let ids: Vec<String> = canal
        .iter()
        .map(|m| if m["isDdl"] == true { "ddl".into() } else { m["data"][0]["id"].as_str().unwrap().to_string() })
        .collect();
    assert_eq!(ids, ["1", "2", "ddl", "3"], "{canal:?}");
    let ddl = &canal[2];
    assert!(ddl["sql"].as_str().unwrap().contains("ADD COLUMN note") && ddl["type"] == "ALTER", "{ddl}");
    assert_eq!(canal[3]["data"][0]["note"], "after");
    // Debezium: the schema-change topic has the statement; the table's topic the rows.
    let schema: Vec<Json> = read_topic(&format!("kfk_ddl_{n}_debezium-json_schema"))
        .iter()
        .map(|m| serde_json::from_slice(m.value.as_ref().unwrap()).unwrap())
        .collect();
    assert_eq!(schema.len(), 1, "{schema:?}");
    assert!(schema[0]["ddl"].as_str().unwrap().contains("ADD COLUMN note"), "{}", schema[0]);
    assert_eq!(schema[0]["databaseName"], src);
    assert_eq!(schema[0]["source"]["name"], "srv");
    let rows = read_topic(&format!("kfk_ddl_{n}_debezium-json.t"));
    let last: Json = serde_json::from_slice(rows.last().unwrap().value.as_ref().unwrap()).unwrap();
    assert_eq!(last["after"]["note"], "after");
}

#[test]
fn a_postgresql_source_publishes_debezium_events_with_schema_lsn_and_snapshot_marks() {
    let ns = "kfk_pg";
    fresh_src_schema(ns);
    src_exec(&[
        &format!("CREATE TABLE {ns}.t (id int PRIMARY KEY, v text)"),
        &format!("ALTER TABLE {ns}.t REPLICA IDENTITY FULL"),
        &format!("INSERT INTO {ns}.t SELECT g, 'v' || g FROM generate_series(1, 100) g"),
    ]);
    let task = "kfk-pg";
    forget_slot(task);
    let dir = workdir();
    let topic = format!("kfk_pg_{}", nonce());
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\ntarget:\n  type: kafka\n  brokers: {}\n  topic: {topic}\n\
         tables:\n  include: ['{ns}\\.t']\nsemantics: exactly-once\nruntime:\n  state: ./state\n",
        src_url(),
        brokers()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    src_exec(&[&format!("UPDATE {ns}.t SET v = 'changed' WHERE id = 7"), &format!("DELETE FROM {ns}.t WHERE id = 8")]);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let msgs: Vec<Json> = read_topic(&topic)
        .iter()
        .filter_map(|m| m.value.as_ref())
        .map(|v| serde_json::from_slice(v).unwrap())
        .collect();
    let snapshot: Vec<&Json> = msgs.iter().filter(|m| m["op"] == "r").collect();
    assert_eq!(snapshot.len(), 100, "snapshot rows are `r`");
    assert!(snapshot.iter().all(|m| m["source"]["snapshot"] == "true" && m["source"]["connector"] == "postgresql"));
    let upd = msgs.iter().find(|m| m["op"] == "u").expect("an update");
    assert_eq!((upd["before"]["v"].as_str(), upd["after"]["v"].as_str()), (Some("v7"), Some("changed")));
    assert_eq!(upd["source"]["schema"], ns);
    assert_eq!(upd["source"]["table"], "t");
    assert!(upd["source"]["lsn"].as_u64().is_some_and(|l| l > 0), "{}", upd["source"]);
    assert!(upd["source"].get("txId").is_some());
    let del = msgs.iter().find(|m| m["op"] == "d").expect("a delete");
    assert_eq!(del["before"]["id"], 8);
    assert!(del["after"].is_null());
    forget_slot(task);
}
