//! The PostgreSQL source on the private PostgreSQL (`wal_level=logical`): snapshot and
//! logical replication under concurrent writes into MariaDB and PostgreSQL, SIGKILLs during
//! the snapshot and the stream (also into an exactly-once append log replayed strictly),
//! unchanged TOAST values, schema changes, tables created mid-stream, slot failures, WAL
//! retention of idle tables. The source is read back with plain SQL (not ferry's decoding)
//! and compared row by row.

mod common;

use common::pg::*;
use common::sql::Target;
use common::*;
use ferry_operators::schema::{Column, ColumnType, TableName, TableSchema};
use std::time::{Duration, Instant};

fn col(name: &str, ty: ColumnType) -> Column {
    Column::new(name, ty, true)
}

fn int(bits: u8) -> ColumnType {
    ColumnType::Int { bits, unsigned: false }
}

fn text_ty() -> ColumnType {
    ColumnType::String { max_chars: None, fixed: false }
}

/// The test's view of `items`: what the comparison reads on both sides.
fn items_schema(ns: &str) -> TableSchema {
    TableSchema {
        name: TableName::new(ns, "items"),
        columns: vec![
            col("id", int(64)),
            col("name", text_ty()),
            col("qty", int(32)),
            col("price", ColumnType::Decimal { precision: 12, scale: 2 }),
            col("ts", ColumnType::Timestamp { fsp: 6 }),
            col("note", text_ty()),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    }
}

fn full_schema(ns: &str) -> TableSchema {
    TableSchema {
        name: TableName::new(ns, "full_id"),
        columns: vec![col("id", int(32)), col("v", text_ty()), col("n", int(32))],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    }
}

/// `items` (REPLICA IDENTITY DEFAULT) with `rows` rows and `full_id` (FULL) with 2000.
fn source_tables(ns: &str, rows: u64) {
    fresh_src_schema(ns);
    src_exec(&[
        &format!(
            "CREATE TABLE {ns}.items (id bigint PRIMARY KEY, name text NOT NULL, qty int, price numeric(12,2), \
             ts timestamptz DEFAULT now(), note text)"
        ),
        &format!(
            "INSERT INTO {ns}.items (id, name, qty, price, ts, note) SELECT g, 'item ' || g, g % 100, g * 1.25, \
             timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END \
             FROM generate_series(1, {rows}) g"
        ),
        &format!("CREATE TABLE {ns}.full_id (id int PRIMARY KEY, v text, n int)"),
        &format!("ALTER TABLE {ns}.full_id REPLICA IDENTITY FULL"),
        &format!("INSERT INTO {ns}.full_id SELECT g, 'v' || g, g FROM generate_series(1, 2000) g"),
        &format!("CREATE TABLE {ns}.unwatched (id bigserial PRIMARY KEY, pad text)"),
    ]);
}

/// A randomized workload: inserts, updates (some changing the key), deletes, multi-statement
/// transactions, one 100k-row transaction, updates of the FULL-identity table.
fn workload(ns: &str, steps: u64, seed: u64) {
    ferry::runtime::io_runtime().block_on(async {
        let c = common::sql::pg_client_at(&src_url()).await;
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..steps {
            let r = next();
            let id = 1 + r % 20_000;
            let sql = match r % 9 {
                0 | 1 => format!(
                    "INSERT INTO {ns}.items (id, name, qty, price) VALUES ({}, 'new''s {i}', {}, {}.5) ON CONFLICT DO NOTHING",
                    1_000_000 + i,
                    r % 50,
                    r % 1000
                ),
                2 | 3 => format!("UPDATE {ns}.items SET qty = qty + 1, price = price + 0.01, note = 'u{i}' WHERE id = {id}"),
                4 => format!("UPDATE {ns}.items SET id = id + 5000000 WHERE id = {id}"),
                5 => format!("DELETE FROM {ns}.items WHERE id = {id}"),
                6 => format!(
                    "BEGIN; INSERT INTO {ns}.items (id, name) VALUES ({}, 'txn') ON CONFLICT DO NOTHING; \
                     UPDATE {ns}.items SET name = 'in txn {i}' WHERE id = {}; DELETE FROM {ns}.items WHERE id = {}; COMMIT",
                    2_000_000 + i,
                    1 + next() % 20_000,
                    1 + next() % 20_000
                ),
                7 => format!("UPDATE {ns}.full_id SET v = 'f{i}', n = n + 1 WHERE id = {}", 1 + r % 2000),
                _ => format!("INSERT INTO {ns}.unwatched (pad) VALUES (repeat('x', 100))"),
            };
            c.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            if i == steps / 2 {
                c.batch_execute(&format!(
                    "INSERT INTO {ns}.items (id, name, qty) SELECT g, 'bulk', 1 FROM generate_series(3000000, 3099999) g"
                ))
                .await
                .unwrap();
            }
        }
    })
}

fn plan_text(task: &str, ns: &str, target: Target, dst: &str, semantics: &str, extra: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\n  chunk_rows: 3000\n  heartbeat_interval: 1s\n{extra}\
         target:\n{}tables:\n  include: ['{ns}\\.(items|full_id)']\nsemantics: {semantics}\nroute:\n  database: {dst}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url(),
        target.plan_section()
    )
}

fn assert_equal(ns: &str, target: Target, dst: &str) {
    for schema in [items_schema(ns), full_schema(ns)] {
        let t = &schema.name.table;
        let want = src_rows(ns, t, &schema);
        let got = target.rows(dst, t, &schema);
        assert_eq!(got.len(), want.len(), "{dst}.{t}: rows in the target vs the source");
        let diff = got.iter().zip(&want).find(|(g, w)| g != w);
        assert!(got == want, "{dst}.{t} differs from the source; first: {diff:?}");
    }
}

fn snapshot_and_stream_under_writes_end_equal(target: Target, semantics: &str) {
    let tag = target.tag();
    let (ns, dst, task) = (format!("pge2e_{tag}"), format!("pge2e_{tag}_t"), format!("pg-e2e-{tag}"));
    forget_slot(&task);
    source_tables(&ns, 30_000);
    target.fresh_namespace(&dst);
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan_text(&task, &ns, target, &dst, semantics, ""));
    let writer = std::thread::spawn({
        let ns = ns.clone();
        move || workload(&ns, 3000, 7)
    });
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    writer.join().unwrap();
    // The first run stopped where the WAL stood when it started; catch up with the rest.
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert_equal(&ns, target, &dst);
}

#[test]
fn postgres_to_mariadb_snapshot_and_stream_under_writes_ends_equal() {
    snapshot_and_stream_under_writes_end_equal(Target::Maria, "exactly-once");
}

#[test]
fn postgres_to_postgres_snapshot_and_stream_under_writes_ends_equal() {
    snapshot_and_stream_under_writes_end_equal(Target::Pg, "at-least-once");
}

/// The server's `logical_decoding_work_mem` in kB (the private servers run with 64kB, so that
/// a transaction of a few hundred rows streams while it is open).
fn decoding_memory_kb() -> u64 {
    src_query_one("SELECT setting FROM pg_settings WHERE name = 'logical_decoding_work_mem'").unwrap().parse().unwrap()
}

#[test]
fn a_transaction_streamed_while_open_arrives_whole_without_its_rolled_back_savepoints() {
    let target = Target::Maria;
    let (ns, dst, task) = ("pgstrm", "pgstrm_t", "pg-strm");
    assert!(decoding_memory_kb() <= 1024, "scripts/servers starts PostgreSQL with logical_decoding_work_mem=64kB");
    forget_slot(task);
    source_tables(ns, 2_000);
    target.fresh_namespace(dst);
    let dir = workdir();
    let p = write_plan(dir.path(), "plan.yaml", &plan_text(task, ns, target, dst, "exactly-once", ""));
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    ferry::runtime::io_runtime().block_on(async {
        let a = common::sql::pg_client_at(&src_url()).await;
        let b = common::sql::pg_client_at(&src_url()).await;
        let t = format!("{ns}.items");
        // A: a big transaction, streamed in blocks while open; rolled-back savepoints (one
        // nested in another, one that dropped a column) and a released one in it.
        a.batch_execute(&format!(
            "BEGIN; INSERT INTO {t} (id, name, qty) SELECT g, 'big', 1 FROM generate_series(10000, 29999) g; \
             SAVEPOINT s1; INSERT INTO {t} (id, name) SELECT g, 'gone' FROM generate_series(40000, 44999) g; \
             UPDATE {t} SET qty = -1 WHERE id <= 500; SAVEPOINT s2; DELETE FROM {t} WHERE id BETWEEN 501 AND 600; \
             ROLLBACK TO s1; SAVEPOINT s3; UPDATE {t} SET note = 'kept' WHERE id BETWEEN 10000 AND 10999; RELEASE s3; \
             SAVEPOINT s5; ALTER TABLE {t} DROP COLUMN note; UPDATE {t} SET qty = qty + 1 WHERE id BETWEEN 10000 AND 10100; \
             ROLLBACK TO s5; \
             DELETE FROM {t} WHERE id BETWEEN 20000 AND 20999; UPDATE {t} SET id = id + 100000 WHERE id <= 100"
        ))
        .await
        .unwrap();
        // B commits small transactions while A is open: they come before A.
        b.batch_execute(&format!(
            "INSERT INTO {t} (id, name) SELECT g, 'small' FROM generate_series(50000, 50099) g; \
             UPDATE {t} SET qty = 99 WHERE id BETWEEN 200 AND 300"
        ))
        .await
        .unwrap();
        a.batch_execute(&format!(
            "SAVEPOINT s4; INSERT INTO {t} (id, name) SELECT g, 'gone too' FROM generate_series(60000, 64999) g; \
             ROLLBACK TO s4; UPDATE {t} SET name = 'after' WHERE id BETWEEN 50000 AND 50009; COMMIT"
        ))
        .await
        .unwrap();
        // A big transaction rolled back as a whole, after streaming.
        a.batch_execute(&format!(
            "BEGIN; INSERT INTO {t} (id, name) SELECT g, 'aborted' FROM generate_series(70000, 89999) g; ROLLBACK"
        ))
        .await
        .unwrap();
    });
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    assert_equal(ns, target, dst);
    let streamed = src_query_one(&format!(
        "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'ferry_{}'",
        task.replace('-', "_")
    ))
    .unwrap_or_default();
    assert!(streamed.parse::<u64>().unwrap_or(0) >= 1, "the server streamed no transaction: {streamed:?}");
}

#[test]
fn replication_sessions_authenticate_with_scram_and_md5_and_a_wrong_password_is_refused() {
    let (ns, dst) = ("pgauth", "pgauth_t");
    fresh_src_schema(ns);
    src_exec(&[
        &format!("CREATE TABLE {ns}.t (id int PRIMARY KEY, v text)"),
        &format!("INSERT INTO {ns}.t SELECT g, 'v' || g FROM generate_series(1, 100) g"),
    ]);
    let port = src_url().rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    for (role, encryption) in [("ferry_scram", "scram-sha-256"), ("ferry_md5", "md5")] {
        let task = format!("pg-auth-{}", &role[6..]);
        forget_slot(&task);
        src_exec(&[
            &format!("DROP ROLE IF EXISTS {role}"),
            &format!("SET password_encryption = '{encryption}'"),
            &format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 's3cret-{role}'"),
        ]);
        Target::Pg.fresh_namespace(dst);
        let dir = workdir();
        let plan = |password: &str| {
            format!(
                "task: {task}\nsource:\n  type: postgres\n  url: postgres://{role}@127.0.0.1:{port}/ferry_src\n  \
                 password: {password}\n  bounded: true\n  heartbeat_interval: 1s\ntarget:\n{}\
                 tables:\n  include: ['{ns}\\..*']\nroute:\n  database: {dst}\nerrors:\n  max_restarts: 0\n\
                 runtime:\n  state: ./state\n",
                Target::Pg.plan_section()
            )
        };
        let wrong = write_plan(dir.path(), "wrong.yaml", &plan("not-it"));
        let out = run_in(dir.path(), &["run", "-q", &wrong]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(role), "{role}: {err}");
        assert!(!err.contains("not-it"), "the password is in the error: {err}");
        let p = write_plan(dir.path(), "plan.yaml", &plan(&format!("s3cret-{role}")));
        ok(&run_in(dir.path(), &["run", "-q", &p]));
        src_exec(&[&format!("INSERT INTO {ns}.t VALUES (1000, '{role}')")]);
        ok(&run_in(dir.path(), &["run", "-q", &p]));
        let got = common::sql::pg_text_rows(
            &Target::Pg.pg_url(),
            &format!("SELECT count(*), max(v) FILTER (WHERE id = 1000) FROM \"{dst}\".t"),
        );
        assert_eq!(got, vec![vec![Some("101".to_string()), Some(role.to_string())]], "{role}");
        src_exec(&[&format!("DELETE FROM {ns}.t WHERE id = 1000")]);
        forget_slot(&task);
    }
}

/// Starts `ferry run -q plan` in `dir` with `env`.
fn spawn(dir: &std::path::Path, plan: &str, env: &[(&str, &str)]) -> KillOnDrop {
    KillOnDrop(ferry().current_dir(dir).envs(env.iter().copied()).args(["run", "-q", plan]).spawn().unwrap())
}

/// Waits (up to 60 s) until `cond` holds while the run goes on.
fn await_run(run: &mut KillOnDrop, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if let Some(s) = run.0.try_wait().unwrap() {
            panic!("the run ended ({s}) before {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `cond` holds while the run goes on, then kills it with SIGKILL.
fn kill_when(run: &mut KillOnDrop, what: &str, cond: impl FnMut() -> bool) {
    await_run(run, what, cond);
    run.0.kill().unwrap();
    run.0.wait().unwrap();
}

/// The committed epoch and the number of chunks done, from the task's newest manifest.
fn progress(state: &std::path::Path, task: &str) -> (u64, usize) {
    let store = ferry::store::Store::open_local(state.to_str().unwrap()).unwrap();
    match ferry::state::TaskState::new(store, task).latest_manifest() {
        Ok(Some(m)) => (m.epoch, m.offsets.iter().filter(|(k, v)| **k > 0 && v["done"] == true).count()),
        _ => (0, 0),
    }
}

#[test]
fn sigkills_during_the_snapshot_and_the_stream_end_equal_to_the_source() {
    let target = Target::Maria;
    let (ns, dst, task) = ("pgkill", "pgkill_t", "pg-kill");
    forget_slot(task);
    source_tables(ns, 40_000);
    target.fresh_namespace(dst);
    let dir = workdir();
    let bounded = write_plan(dir.path(), "plan.yaml", &plan_text(task, ns, target, dst, "exactly-once", ""));
    let endless = write_plan(
        dir.path(),
        "endless.yaml",
        &plan_text(task, ns, target, dst, "exactly-once", "").replace("  bounded: true\n", ""),
    );
    let state = dir.path().join("state");
    let slow = [("FERRY_FAULT_CHUNK_DELAY_MS", "300")];
    let writer = std::thread::spawn(move || workload(ns, 20_000, 11));
    // Twice in the snapshot: after some chunks are committed, before all are.
    let total = 15;
    let mut run = spawn(dir.path(), &bounded, &slow);
    kill_when(&mut run, "a first committed chunk", || progress(&state, task).1 >= 2);
    let (_, first) = progress(&state, task);
    assert!(first < total, "the snapshot had finished ({first} chunks) before the kill");
    let mut run = spawn(dir.path(), &bounded, &slow);
    kill_when(&mut run, "more committed chunks", || progress(&state, task).1 >= first + 2);
    // Twice in the stream, under writes.
    for _ in 0..2 {
        let (epoch, _) = progress(&state, task);
        let mut run = spawn(dir.path(), &endless, &[]);
        kill_when(&mut run, "streamed epochs", || progress(&state, task).0 >= epoch + 5);
    }
    writer.join().unwrap();
    ok(&run_in(dir.path(), &["run", "-q", &bounded]));
    assert_equal(ns, target, dst);
    // No temporary slot of a killed reader is left behind (other tests' live readers have
    // theirs: only this task's count).
    let left = src_query_one(
        "SELECT count(*) FROM pg_replication_slots WHERE temporary AND slot_name LIKE 'ferry\\_pg\\_kill\\_r%'",
    )
    .unwrap();
    assert_eq!(left, "0", "temporary slots left: {left}");
}

#[test]
fn an_unchanged_toast_value_survives_an_update_of_another_column() {
    let (ns, dst, task) = ("pgtoast", "pgtoast_t", "pg-toast");
    forget_slot(task);
    fresh_src_schema(ns);
    src_exec(&[
        &format!("CREATE TABLE {ns}.docs (id int PRIMARY KEY, n int, body text)"),
        &format!("CREATE TABLE {ns}.docs_full (id int PRIMARY KEY, n int, body text)"),
        &format!("ALTER TABLE {ns}.docs_full REPLICA IDENTITY FULL"),
    ]);
    Target::Pg.fresh_namespace(dst);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  heartbeat_interval: 1s\ntarget:\n{}\
         tables:\n  include: ['{ns}\\..*']\nroute:\n  database: {dst}\nruntime:\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url(),
        Target::Pg.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let mut run = KillOnDrop(ferry().current_dir(dir.path()).args(["run", "-q", &p]).spawn().unwrap());
    // A 100 kB value that does not compress (random digits): stored out of line (TOAST).
    let body = "md5(g::text) || repeat(md5((g + 1)::text), 3200)";
    for t in ["docs", "docs_full"] {
        src_exec(&[&format!("INSERT INTO {ns}.{t} SELECT g, 0, {body} FROM generate_series(1, 3) g")]);
        src_exec(&[&format!("UPDATE {ns}.{t} SET n = n + 1")]);
        src_exec(&[&format!("UPDATE {ns}.{t} SET n = n + 1 WHERE id = 2")]);
    }
    let schema = |t: &str| TableSchema {
        name: TableName::new(ns, t),
        columns: vec![col("id", int(32)), col("n", int(32)), col("body", text_ty())],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for t in ["docs", "docs_full"] {
        let s = schema(t);
        let want = src_rows(ns, t, &s);
        assert!(want[0].len() > 100_000, "the value is 100 kB");
        loop {
            let got = if pg_target_has(dst, t) { Target::Pg.rows(dst, t, &s) } else { Vec::new() };
            if got == want {
                break;
            }
            assert!(run.0.try_wait().unwrap().is_none(), "the run ended");
            assert!(Instant::now() < deadline, "{t}: the target never matched the source; got {} rows", got.len());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Whether the PostgreSQL target has `ns.table`.
fn pg_target_has(ns: &str, table: &str) -> bool {
    ferry::runtime::io_runtime().block_on(async {
        let c = common::sql::pg_client().await;
        let r = c.query_one(&format!("SELECT to_regclass('\"{ns}\".\"{table}\"') IS NOT NULL"), &[]).await.unwrap();
        r.get::<_, bool>(0)
    })
}

#[test]
fn a_lost_slot_and_a_slot_ahead_of_the_checkpoint_fail_with_the_way_out() {
    let (ns, dst, task) = ("pgslot", "pgslot_t", "pg-slot");
    forget_slot(task);
    fresh_src_schema(ns);
    src_exec(&[&format!("CREATE TABLE {ns}.t (id int PRIMARY KEY)"), &format!("INSERT INTO {ns}.t VALUES (1)")]);
    Target::Pg.fresh_namespace(dst);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\n  heartbeat_interval: 1s\ntarget:\n{}\
         tables:\n  include: ['{ns}\\..*']\nroute:\n  database: {dst}\nruntime:\n  state: ./state\n",
        src_url(),
        Target::Pg.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    // Someone advances the slot past what the task committed: a gap.
    src_exec(&[&format!("INSERT INTO {ns}.t VALUES (2)")]);
    src_exec(&["SELECT pg_replication_slot_advance('ferry_pg_slot', pg_current_wal_lsn())"]);
    let out = run_in(dir.path(), &["run", "-q", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("past the task's checkpoint"), "{err}");
    assert!(err.contains("--from-scratch"), "{err}");
    // The slot is dropped: never made again silently.
    src_exec(&["SELECT pg_drop_replication_slot('ferry_pg_slot')"]);
    let out = run_in(dir.path(), &["run", "-q", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is gone"), "{err}");
    let exists = src_query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'ferry_pg_slot'");
    assert_eq!(exists.as_deref(), Some("0"));
    // Starting over works.
    ok(&run_in(dir.path(), &["run", "-q", "--from-scratch", &p]));
    // A publication dropped after the slot: one made now could not decode the slot's WAL.
    src_exec(&["DROP PUBLICATION ferry_pg_slot"]);
    let out = run_in(dir.path(), &["run", "-q", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("publication `ferry_pg_slot` is gone"), "{err}");
    assert!(err.contains("--from-scratch"), "{err}");
    ok(&run_in(dir.path(), &["run", "-q", "--from-scratch", &p]));
}

/// A fresh source schema (made by `setup`, `{ns}` standing for it), target namespace and slot
/// for a mid-stream case of `target`: `(ns, dst, task)`.
fn fresh_case(prefix: &str, target: Target, setup: &[&str]) -> (String, String, String) {
    let tag = target.tag();
    let (ns, dst, task) = (format!("{prefix}_{tag}"), format!("{prefix}_{tag}_t"), format!("{prefix}-{tag}"));
    forget_slot(&task);
    fresh_src_schema(&ns);
    let sqls: Vec<String> = setup.iter().map(|s| s.replace("{ns}", &ns)).collect();
    src_exec(&sqls.iter().map(String::as_str).collect::<Vec<_>>());
    target.fresh_namespace(&dst);
    (ns, dst, task)
}

/// An unbounded exactly-once plan of `task` into `dst` that follows schema changes (`auto`)
/// and takes `tables` (the body of the plan's `tables:` section).
fn following_plan(task: &str, target: Target, dst: &str, tables: &str) -> String {
    format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  heartbeat_interval: 1s\ntarget:\n{}\
         tables:\n{tables}semantics: exactly-once\nroute:\n  database: {dst}\n\
         schema_changes:\n  policy: auto\nerrors:\n  max_restarts: 0\nruntime:\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url(),
        target.plan_section()
    )
}

#[test]
fn add_drop_rename_and_retype_mid_stream_make_each_target_follow_the_source() {
    for target in [Target::Maria, Target::Pg] {
        let tag = target.tag();
        let (ns, dst, task) = fresh_case(
            "pgddl",
            target,
            &[
                "CREATE TABLE {ns}.t (id int PRIMARY KEY, a int, b varchar(10))",
                "INSERT INTO {ns}.t VALUES (1, 1, 'x'), (2, 2, 'y'), (3, 3, 'z')",
            ],
        );
        let dir = workdir();
        let text = following_plan(&task, target, &dst, &format!("  include: ['{ns}\\..*']\n"));
        let p = write_plan(dir.path(), "plan.yaml", &text);
        let mut run = spawn(dir.path(), &p, &[]);
        let start = TableSchema {
            name: TableName::new(&dst, "t"),
            columns: vec![col("id", int(32)), col("a", int(32)), col("b", text_ty())],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        await_run(&mut run, &format!("{tag}: the snapshot"), || {
            !target.columns(&dst, "t").is_empty() && target.rows(&dst, "t", &start) == src_rows(&ns, "t", &start)
        });
        src_exec(&[
            &format!("SET search_path = {ns}"),
            "INSERT INTO t VALUES (4, 4, 'w')",
            "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 7",
            "INSERT INTO t VALUES (5, 5, 'v', 9)",
            "ALTER TABLE t ALTER COLUMN a TYPE bigint",
            "INSERT INTO t VALUES (6, 6000000000, 'u', 6)",
            "ALTER TABLE t RENAME COLUMN a TO a2",
            "INSERT INTO t VALUES (7, 7, 't', 7)",
            "UPDATE t SET a2 = a2 + 10 WHERE id = 1",
            "ALTER TABLE t DROP COLUMN b",
            "INSERT INTO t VALUES (8, 8, 8)",
            "UPDATE t SET c = 70 WHERE id = 2",
        ]);
        let end = TableSchema {
            name: TableName::new(&dst, "t"),
            columns: vec![col("id", int(32)), col("a2", int(64)), col("c", int(32))],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        await_run(&mut run, &format!("{tag}: the target to follow the source"), || {
            target.columns(&dst, "t") == ["id", "a2", "c"] && target.rows(&dst, "t", &end) == src_rows(&ns, "t", &end)
        });
    }
}

/// Every column of the all-types table as the test compares it: an expression over the
/// column whose text is the same on the source and on a PostgreSQL target.
const ALL_TYPES: &[(&str, &str, &str)] = &[
    // (column, source type, comparison expression)
    ("i2", "smallint", "i2::text"),
    ("i8", "bigint", "i8::text"),
    ("n", "numeric", "n::text"),
    ("n2", "numeric(10,2)", "n2::text"),
    ("f4", "real", "f4::text"),
    ("f8", "double precision", "f8::text"),
    ("m", "money", "m::numeric::text"),
    ("t", "text", "t"),
    ("vc", "varchar(20)", "vc"),
    ("ch", "char(5)", "ch::text"),
    ("by", "bytea", "encode(by, 'hex')"),
    ("b", "boolean", "b::text"),
    ("d", "date", "d::text"),
    ("ts", "timestamp", "ts::text"),
    ("tz", "timestamptz", "tz::text"),
    ("ti", "time", "ti::text"),
    ("tt", "timetz", "tt::text"),
    ("iv", "interval", "iv::text"),
    ("u", "uuid", "u::text"),
    ("j", "json", "j::text"),
    ("jb", "jsonb", "jb::text"),
    ("ai", "int[]", "ai::text"),
    ("at", "text[]", "at::text"),
    ("bt", "bit(8)", "bt::text"),
    ("vb", "varbit(20)", "vb::text"),
    ("e", "mood", "e::text"),
    ("ip", "inet", "ip::text"),
    ("dm", "posint", "dm::text"),
];

/// Rows of the all-types table, one `VALUES` tuple each, ids from `first`: edge values.
fn all_types_rows(first: i32) -> Vec<String> {
    let big = "9".repeat(1000);
    let nulls = |n: usize| vec!["NULL"; n].join(", ");
    [
        "32767, 9223372036854775807, 'NaN', 12345678.91, 'Infinity', '-Infinity', '-92233720368547758.08', \
         E'tab\\tnew\\nline ''q'' \\\\ back', 'ünï©ødé 🚀', 'abc', '\\x00ff00'::bytea, true, 'infinity', \
         '2024-02-29 23:59:59.999999', '2024-01-01 10:00:00', '24:00:00', '10:00:00+05:30', \
         '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2.50, \"ü\"]}', \
         '{\"z\": 1, \"a\": \"ü\\u00e9\"}', '{{1,2},{3,NULL}}', '{\"a b\",NULL,\"c,d\",\"\\\\\"}', B'10100101', B'1', \
         'happy', '192.168.0.1/24', 7"
            .to_string(),
        format!(
            "-32768, -9223372036854775808, '{big}', -0.01, 'NaN', 1.7976931348623157e308, 0, '', '', '', ''::bytea, \
             false, '0044-03-15 BC', '4713-01-01 00:00:00 BC', '1999-12-31 23:59:59.5+03', '00:00:00', '00:00:00-12', \
             '-1 days +00:00:01', '00000000-0000-0000-0000-000000000000', 'null', '[]', '{{}}', '{{}}', B'00000000', B'', \
             'sad', '::1', 1"
        ),
        format!("0, {}, '-infinity', 'infinity', '-infinity', {}", nulls(11), nulls(13)),
        format!(
            "1, 1, '-0.000000000000000000000000000001', NULL, '1.17549435e-38', '5e-324', 0.5, 'x', 'y', 'z', NULL, NULL, \
             '5874897-12-31', '294276-12-31 23:59:59.999999', '294246-12-31 23:59:59.999999+00', NULL, NULL, \
             '178000000 years', NULL, NULL, NULL, '{{1}}', {}",
            nulls(6)
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, r)| format!("({}, {r})", first + i as i32))
    .collect()
}

/// A fresh schema `ns` with the empty all-types table `a` (its enum and domain types), the
/// slot of `task` forgotten.
fn all_types_table(ns: &str, task: &str) {
    forget_slot(task);
    fresh_src_schema(ns);
    let cols: Vec<String> = ALL_TYPES.iter().map(|(c, t, _)| format!("{c} {t}")).collect();
    src_exec(&[
        &format!("DROP TYPE IF EXISTS {ns}.mood; CREATE TYPE {ns}.mood AS ENUM ('sad', 'happy')"),
        &format!("CREATE DOMAIN {ns}.posint AS int CHECK (VALUE > 0)"),
        &format!("SET search_path = {ns}, public; CREATE TABLE {ns}.a (id int PRIMARY KEY, {})", cols.join(", ")),
    ]);
}

#[test]
fn every_type_arrives_identical_through_snapshot_and_stream() {
    let (ns, dst, task) = ("pgtypes", "pgtypes_t", "pg-types");
    all_types_table(ns, task);
    let insert = |rows: Vec<String>| {
        // Timestamps with a zone are written under a session zone that is not UTC.
        src_exec(&[&format!(
            "SET TimeZone = 'Asia/Kolkata'; SET search_path = {ns}, public; INSERT INTO {ns}.a VALUES {}",
            rows.join(", ")
        )]);
    };
    insert(all_types_rows(1));
    Target::Pg.fresh_namespace(dst);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  heartbeat_interval: 1s\ntarget:\n{}\
         tables:\n  include: ['{ns}\\..*']\nroute:\n  database: {dst}\nruntime:\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url(),
        Target::Pg.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let mut run = spawn(dir.path(), &p, &[]);
    let exprs: Vec<&str> = ALL_TYPES.iter().map(|(_, _, e)| *e).collect();
    let read = |url: &str, ns: &str| {
        common::sql::pg_text_rows(url, &format!("SELECT id::text, {} FROM \"{ns}\".a ORDER BY id", exprs.join(", ")))
    };
    // The snapshot's rows first, then the same rows again through the stream, under other ids.
    await_run(&mut run, "the snapshot's rows", || {
        pg_target_has(dst, "a") && read(&common::sql::pg_url(), dst).len() == 4
    });
    insert(all_types_rows(100));
    let want = read(&src_url(), ns);
    assert_eq!(want.len(), 8);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = read(&common::sql::pg_url(), dst);
        if got == want {
            break;
        }
        assert!(run.0.try_wait().unwrap().is_none(), "the run ended");
        if Instant::now() > deadline {
            let first = got.iter().zip(&want).find(|(g, w)| g != w).map(|(g, w)| {
                let at = g.iter().zip(w).position(|(a, b)| a != b).unwrap_or(0);
                let name = if at == 0 { "id" } else { ALL_TYPES[at - 1].0 };
                format!("row {:?} column {name}: {:?} vs the source's {:?}", w[0], g.get(at), w.get(at))
            });
            panic!("{} rows of {}; first difference: {first:?}", got.len(), want.len());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The all-types table into Parquet files, read back by `ferry verify`: every value Parquet
/// holds comes back equal (uuid, interval, arrays, bit strings, NaN and unbounded numerics,
/// money, enums, domains, inet); the rows with `infinity` dates or timestamps beyond what a
/// Parquet timestamp counts are dirty data naming the column, and verify reports exactly them
/// as missing.
#[test]
fn every_type_into_parquet_verifies_equal_except_the_rows_parquet_cannot_hold() {
    let (ns, task) = ("pgparquet", "pg-parquet");
    all_types_table(ns, task);
    src_exec(&[&format!(
        "SET TimeZone = 'Asia/Kolkata'; SET search_path = {ns}, public; INSERT INTO {ns}.a VALUES {}, {}",
        all_types_rows(1).join(", "),
        // Row 1 with a finite date: its uuid, interval, arrays, NaN and infinite numerics.
        all_types_rows(5)[0].replace("true, 'infinity',", "true, '2024-01-01',")
    )]);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\n  heartbeat_interval: 1s\n\
         target:\n  type: files\n  path: ./out\n  format: parquet\ntables:\n  include: ['{ns}\\..*']\n\
         semantics: exactly-once\nruntime:\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let dirty = run_in(dir.path(), &["dirty", "show", &p]);
    let dirty = ok(&dirty);
    let out = run_in(dir.path(), &["verify", "-q", &p, "--output", "report"]);
    let report = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.path().join("report").join(f))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let shown =
        format!("{}\n{}\ndirty:\n{dirty}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(report("diff.jsonl").is_empty(), "{:#?}\n{shown}", report("diff.jsonl"));
    assert!(report("extra.jsonl").is_empty(), "{shown}");
    let mut missing: Vec<String> = report("missing.jsonl").iter().map(|m| m["key"]["id"].to_string()).collect();
    missing.sort();
    assert_eq!(missing, ["\"1\"", "\"3\"", "\"4\""], "{shown}");
    // Each is in the dirty archive, naming the column Parquet cannot hold.
    for (id, why) in [
        (1, "column `d`: value infinity (date) does not fit the Parquet type Date32"),
        (3, "column `d`: value -infinity (date) does not fit"),
        (4, "column `ts`: value 294276-12-31 23:59:59.999999 (datetime) does not fit"),
    ] {
        let line = dirty
            .lines()
            .find(|l| l.contains(&format!("\"row\":[{id},")))
            .unwrap_or_else(|| panic!("row {id}: {shown}"));
        assert!(line.contains(why), "row {id}: {line}");
    }
}

#[test]
fn idle_watched_tables_next_to_a_busy_unwatched_one_keep_the_slots_wal_bounded() {
    let (ns, task) = ("pgidle", "pg-idle");
    forget_slot(task);
    fresh_src_schema(ns);
    src_exec(&[
        &format!("CREATE TABLE {ns}.watched (id int PRIMARY KEY)"),
        &format!("INSERT INTO {ns}.watched VALUES (1)"),
        &format!("CREATE TABLE {ns}.busy (id bigserial PRIMARY KEY, pad text)"),
    ]);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  heartbeat_interval: 1s\ntarget:\n  type: null\n\
         tables:\n  include: ['{ns}\\.watched']\nruntime:\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let run = spawn(dir.path(), &p, &[]);
    let retained = || -> i64 {
        src_query_one(&format!(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots \
             WHERE slot_name = 'ferry_{}'",
            task.replace('-', "_")
        ))
        .map_or(i64::MAX, |v| v.parse().unwrap())
    };
    let lsn = || -> i64 { src_query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint").unwrap().parse().unwrap() };
    let start = lsn();
    let mut worst = 0;
    let began = Instant::now();
    let secs = 12;
    while began.elapsed() < Duration::from_secs(secs) {
        src_exec(&[&format!("INSERT INTO {ns}.busy (pad) SELECT repeat('x', 200) FROM generate_series(1, 2000)")]);
        if began.elapsed() > Duration::from_secs(4) {
            worst = worst.max(retained());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let written = lsn() - start;
    drop(run);
    eprintln!("WAL written {written} bytes, the slot retained at most {worst}");
    assert!(written > 20_000_000, "the busy table wrote only {written} bytes of WAL");
    // A few heartbeat intervals (1s) of WAL at the average rate; a slot never acknowledged
    // would retain all of it.
    let bound = written / secs as i64 * 5;
    assert!(worst < bound, "the slot retained {worst} bytes of WAL, more than 5 s of it ({bound}) of {written}");
}

#[test]
fn check_names_what_the_source_lacks_with_the_statement_that_fixes_it() {
    let ns = "pgcheck";
    fresh_src_schema(ns);
    src_exec(&[
        &format!("CREATE TABLE {ns}.keyed (id int PRIMARY KEY, v text)"),
        &format!("CREATE TABLE {ns}.full_id (id int PRIMARY KEY)"),
        &format!("ALTER TABLE {ns}.full_id REPLICA IDENTITY FULL"),
        "DROP ROLE IF EXISTS ferry_norepl",
        "CREATE ROLE ferry_norepl LOGIN",
        &format!("GRANT USAGE ON SCHEMA {ns} TO ferry_repl, ferry_norepl"),
    ]);
    let dir = workdir();
    let check = |url: &str, extra: &str| -> String {
        let text = format!(
            "task: pg-check\nsource:\n  type: postgres\n  url: {url}\n{extra}target:\n  type: null\n\
             tables:\n  include: ['{ns}\\..*']\nruntime:\n  state: ./state\n"
        );
        let p = write_plan(dir.path(), "plan.yaml", &text);
        let out = run_in(dir.path(), &["check", &p]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let norepl = repl_url().replace("ferry_repl", "ferry_norepl");
    let out = check(&norepl, "");
    assert!(out.contains("ALTER ROLE \"ferry_norepl\" REPLICATION"), "{out}");
    let out = check(&repl_url(), "");
    assert!(out.contains(&format!("GRANT SELECT ON \"{ns}\".\"keyed\" TO \"ferry_repl\"")), "{out}");
    src_exec(&[&format!("GRANT SELECT ON ALL TABLES IN SCHEMA {ns} TO ferry_repl")]);
    let out = check(&repl_url(), "");
    assert!(out.contains("ok — 2 tables"), "{out}");
    let out = check(&repl_url(), "  replica_identity: require-full\n");
    assert!(out.contains(&format!("ALTER TABLE \"{ns}\".\"keyed\" REPLICA IDENTITY FULL")), "{out}");
    assert!(!out.contains("full_id"), "{out}");
    // Least privilege: the replication role cannot create the publication; it says who can.
    let text = format!(
        "task: pg-check\nsource:\n  type: postgres\n  url: {}\ntarget:\n  type: null\n\
         tables:\n  include: ['{ns}\\..*']\nruntime:\n  state: ./state\n",
        repl_url()
    );
    forget_slot("pg-check");
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let out = run_in(dir.path(), &["run", "-q", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("publication_mode: existing"), "{err}");
    src_exec(&[&format!("CREATE PUBLICATION ferry_pg_check FOR TABLE {ns}.keyed, {ns}.full_id")]);
    let existing = text.replace("  url:", "  publication_mode: existing\n  bounded: true\n  url:");
    let p = write_plan(dir.path(), "plan.yaml", &existing);
    ok(&run_in(dir.path(), &["run", "-q", &p]));
}

#[test]
fn into_mariadb_the_preview_names_every_column_that_does_not_arrive_identical_and_refused_rows_are_archived() {
    let (ns, dst, task) = ("pgtypes_m", "pgtypes_m_t", "pg-types-m");
    forget_slot(task);
    fresh_src_schema(ns);
    let cols: Vec<String> = ALL_TYPES.iter().map(|(c, t, _)| format!("{c} {t}")).collect();
    src_exec(&[
        &format!("CREATE TYPE {ns}.mood AS ENUM ('sad', 'happy')"),
        &format!("CREATE DOMAIN {ns}.posint AS int CHECK (VALUE > 0)"),
        &format!("SET search_path = {ns}, public; CREATE TABLE {ns}.a (id int PRIMARY KEY, {})", cols.join(", ")),
        &format!(
            "SET TimeZone = 'Asia/Kolkata'; SET search_path = {ns}, public; INSERT INTO {ns}.a VALUES {}",
            all_types_rows(1).join(", ")
        ),
    ]);
    Target::Maria.fresh_namespace(dst);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\ntarget:\n{}\
         tables:\n  include: ['{ns}\\..*']\nroute:\n  database: {dst}\nruntime:\n  state: ./state\n",
        src_url(),
        Target::Maria.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let preview = ok(&run_in(dir.path(), &["preview", &p]));
    for c in ["n", "f4", "f8", "m", "d", "ts", "tz", "tt", "iv", "ai", "at", "vb", "ip"] {
        assert!(preview.contains(&format!(" {c} (")), "the preview does not name {c}:\n{preview}");
    }
    // Every row holds a value MariaDB refuses: each goes to the dirty archive with its reason.
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    let mut reasons = Vec::new();
    for f in std::fs::read_dir(dir.path().join(format!("state/{task}/dirty"))).unwrap() {
        for l in std::fs::read_to_string(f.unwrap().path()).unwrap().lines() {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            reasons.push(j["reason"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    assert!(reasons.iter().any(|r| r.contains("NaN")), "{reasons:#?}");
    assert!(reasons.iter().any(|r| r.contains("infinity")), "{reasons:#?}");
}

#[test]
fn a_table_created_mid_stream_that_the_selection_takes_joins_with_its_rows() {
    for target in [Target::Maria, Target::Pg] {
        let tag = target.tag();
        let (ns, dst, task) = fresh_case(
            "pgnew",
            target,
            &[
                "CREATE TABLE {ns}.a (id int PRIMARY KEY, v text)",
                "INSERT INTO {ns}.a VALUES (1, 'x'), (2, 'y'), (3, 'z')",
                "CREATE TABLE {ns}.skipped (id int PRIMARY KEY)",
            ],
        );
        let dir = workdir();
        let tables = format!("  include: ['{ns}\\..*']\n  exclude: ['{ns}\\.skip.*']\n");
        let text = following_plan(&task, target, &dst, &tables);
        let p = write_plan(dir.path(), "plan.yaml", &text);
        let mut run = spawn(dir.path(), &p, &[]);
        let schema = |t: &str| TableSchema {
            name: TableName::new(&dst, t),
            columns: vec![col("id", int(32)), col("v", text_ty())],
            primary_key: vec![0],
            unique_keys: vec![],
            version: 1,
        };
        let equal = |t: &str| {
            !target.columns(&dst, t).is_empty() && target.rows(&dst, t, &schema(t)) == src_rows(&ns, t, &schema(t))
        };
        await_run(&mut run, &format!("{tag}: the snapshot"), || equal("a"));
        // A new table with rows written before and while the task notices it, next to changes
        // of a known table; one the selection excludes stays out.
        src_exec(&[
            &format!("CREATE TABLE {ns}.b (id int PRIMARY KEY, v text)"),
            &format!("INSERT INTO {ns}.b SELECT g, 'b' || g FROM generate_series(1, 500) g"),
            &format!("INSERT INTO {ns}.a VALUES (4, 'w')"),
            &format!("CREATE TABLE {ns}.skip_me (id int PRIMARY KEY, v text)"),
            &format!("INSERT INTO {ns}.skip_me VALUES (1, 'no')"),
        ]);
        let writer = std::thread::spawn({
            let ns = ns.clone();
            move || {
                for i in 0..300 {
                    src_exec(&[
                        &format!("INSERT INTO {ns}.b VALUES ({}, 'late')", 1000 + i),
                        &format!("UPDATE {ns}.b SET v = 'u{i}' WHERE id = {}", 1 + i),
                        &format!("DELETE FROM {ns}.b WHERE id = {}", 250 + i),
                    ]);
                }
            }
        });
        writer.join().unwrap();
        src_exec(&[&format!("UPDATE {ns}.a SET v = 'after' WHERE id = 1")]);
        await_run(&mut run, &format!("{tag}: the new table to join and follow the source"), || {
            equal("a") && equal("b")
        });
        assert!(target.columns(&dst, "skip_me").is_empty(), "{tag}: an excluded table reached the target");
        // Still streaming into the new table.
        src_exec(&[&format!("INSERT INTO {ns}.b VALUES (5000, 'streamed')")]);
        await_run(&mut run, &format!("{tag}: a change of the new table after it joined"), || equal("b"));
    }
}

/// The plans of an exactly-once append run of `ns.items` into the PostgreSQL target's
/// `dst.items` (`target_extra`: more lines of the target section): the endless one, the
/// bounded one, and the state directory they share.
fn append_plans(
    dir: &std::path::Path,
    task: &str,
    ns: &str,
    dst: &str,
    target_extra: &str,
) -> (String, String, std::path::PathBuf) {
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  chunk_rows: 2000\n  heartbeat_interval: 1s\ntarget:\n{}\
         {target_extra}tables:\n  include: ['{ns}\\.items']\nsemantics: exactly-once\nwrite_mode: append\n\
         metadata:\n  - {{column: _op, field: op_type}}\nroute:\n  database: {dst}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url(),
        Target::Pg.plan_section()
    );
    let endless = write_plan(dir, "endless.yaml", &text);
    let bounded = write_plan(dir, "plan.yaml", &text.replace("  chunk_rows:", "  bounded: true\n  chunk_rows:"));
    (endless, bounded, dir.join("state"))
}

#[test]
fn sigkills_leave_an_exactly_once_append_log_without_gap_or_duplicate() {
    let (ns, dst, task) = ("pgappend", "pgappend_t", "pg-append");
    forget_slot(task);
    fresh_src_schema(ns);
    src_exec(&[
        &format!("CREATE TABLE {ns}.items (id bigint PRIMARY KEY, v bigint NOT NULL)"),
        &format!("INSERT INTO {ns}.items SELECT g, g FROM generate_series(1, 30000) g"),
        // An append log of deletes needs whole before images (DEFAULT gives the key only).
        &format!("ALTER TABLE {ns}.items REPLICA IDENTITY FULL"),
    ]);
    common::sql::fresh_pg_append_log(dst);
    let dir = workdir();
    let (endless, bounded, state) = append_plans(dir.path(), task, ns, dst, "");
    let writer = std::thread::spawn(move || {
        ferry::runtime::io_runtime().block_on(async {
            let c = common::sql::pg_client_at(&src_url()).await;
            for i in 0..6000i64 {
                let sql = match i % 4 {
                    0 => format!("INSERT INTO {ns}.items VALUES ({}, 0)", 100_000 + i),
                    1 => format!("UPDATE {ns}.items SET v = v + 1 WHERE id = {}", 1 + (i * 37) % 30_000),
                    2 => format!("DELETE FROM {ns}.items WHERE id = {}", 5 + i * 3),
                    _ => format!("UPDATE {ns}.items SET id = id + 1000000 WHERE id = {}", 3 + i * 3),
                };
                c.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    });
    // In the snapshot (chunks slowed down), then twice in the stream.
    let mut run = spawn(dir.path(), &endless, &[("FERRY_FAULT_CHUNK_DELAY_MS", "200")]);
    kill_when(&mut run, "a first committed chunk", || progress(&state, task).1 >= 2);
    let (_, chunks) = progress(&state, task);
    assert!(chunks < 15, "the snapshot had finished ({chunks} chunks) before the kill");
    for _ in 0..2 {
        let (epoch, _) = progress(&state, task);
        let mut run = spawn(dir.path(), &endless, &[]);
        kill_when(&mut run, "streamed epochs", || progress(&state, task).0 >= epoch + 5);
    }
    writer.join().unwrap();
    ok(&run_in(dir.path(), &["run", "-q", &bounded]));
    let replayed = common::sql::replay_strictly(&common::sql::pg_append_log(dst));
    assert_replayed_is_source(&replayed, ns);
}

/// A kill while no sink worker can commit (this task's progress table locked in the target):
/// epochs that hold chunks are recorded but not committed, and the restart replays them. The
/// chunks are read again as they are now (there are no before images to turn them back with)
/// after deletes, inserts and updates of their keys; those changes are in the new read, and
/// the append log must not get them a second time from the stream: replayed strictly, it
/// equals the source.
#[test]
fn chunks_of_a_replayed_epoch_no_sink_committed_do_not_get_the_changes_of_their_new_read_twice() {
    replayed_chunks_case("pgreread", false);
}

/// The same with only sink worker 1's progress row locked: worker 0 commits the epochs that
/// hold chunks, worker 1 does not. At the restart worker 0 skips them (its rows are the first
/// read's) and worker 1 takes the new read: the changes between the two reads reach worker 0
/// only, and the append log, replayed strictly, equals the source.
#[test]
fn a_replayed_epoch_committed_by_one_sink_worker_and_not_the_other_ends_exactly_once() {
    replayed_chunks_case("pgsplit", true);
}

/// See the two tests above: `split` locks only worker 1's progress row.
fn replayed_chunks_case(ns: &str, split: bool) {
    let (dst, task) = (format!("{ns}_t"), format!("pg-{ns}"));
    let (dst, task) = (dst.as_str(), task.as_str());
    forget_slot(task);
    fresh_src_schema(ns);
    src_exec(&[
        &format!("CREATE TABLE {ns}.items (id bigint PRIMARY KEY, v bigint NOT NULL)"),
        &format!("INSERT INTO {ns}.items SELECT g, g FROM generate_series(1, 80000) g"),
        &format!("ALTER TABLE {ns}.items REPLICA IDENTITY FULL"),
    ]);
    common::sql::fresh_pg_append_log(dst);
    let progress_schema = format!("{dst}_progress");
    Target::Pg.exec(&[format!("DROP SCHEMA IF EXISTS {progress_schema} CASCADE")]);
    let dir = workdir();
    let (endless, bounded, state) =
        append_plans(dir.path(), task, ns, dst, &format!("  progress_schema: {progress_schema}\n"));
    // Chunks of 4,000 keys: each spans several key blocks, so both sink workers get rows of it.
    let endless = std::fs::read_to_string(&endless).unwrap();
    assert!(endless.contains("chunk_rows: 2000"), "{endless}");
    let endless = endless.replace("chunk_rows: 2000", "chunk_rows: 4000");
    let endless = write_plan(dir.path(), "endless.yaml", &endless);
    // 20 chunks of 600 ms over 2 workers: room for a few tries at the kill point below.
    let mut run = spawn(dir.path(), &endless, &[("FERRY_FAULT_CHUNK_DELAY_MS", "600")]);
    let store = ferry::store::Store::open_local(state.to_str().unwrap()).unwrap();
    let st = ferry::state::TaskState::new(store, task);
    // The recorded epochs after the newest manifest that hold a chunk.
    let replayed_chunk_epochs = || {
        let after = st.latest_manifest().ok().flatten().map_or(0, |m| m.epoch);
        let bs = st.boundaries_after(after).unwrap_or_default();
        bs.iter().filter(|b| b.offsets.iter().any(|(k, v)| *k > 0 && v["done"] == true)).map(|b| b.epoch).collect()
    };
    let sql = format!("SELECT worker, epoch FROM {progress_schema}.progress WHERE task = $1 ORDER BY worker");
    ferry::runtime::io_runtime().block_on(async {
        let lock = common::sql::pg_client().await;
        let look = common::sql::pg_client().await;
        let committed = || async {
            // (No progress table before the run made it.)
            let rows = look.query(&sql, &[&task]).await.unwrap_or_default();
            let by_worker: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(1) as u64).collect();
            (rows.len() == 2).then_some(by_worker)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no kill point found within 60 s");
            if let Some(s) = run.0.try_wait().unwrap() {
                panic!("the run ended ({s}) before a kill point");
            }
            // Both workers committed a first epoch.
            if committed().await.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            // From here worker 1 (or no worker) commits: its progress row waits for the lock.
            let locking = if split {
                format!(
                    "BEGIN; SELECT 1 FROM {progress_schema}.progress WHERE task = '{task}' AND worker = 1 FOR UPDATE"
                )
            } else {
                format!("BEGIN; LOCK TABLE {progress_schema}.progress IN SHARE MODE")
            };
            lock.batch_execute(&locking).await.unwrap();
            // The kill point: recorded epochs holding chunks after the manifest, each committed
            // by no worker (or, `split`, by worker 0 and not worker 1). The lock can land
            // between two workers' commits of one epoch, which then stays split: try again.
            let tried = Instant::now();
            let found = loop {
                let epochs: Vec<u64> = replayed_chunk_epochs();
                let by_worker = committed().await.expect("both rows");
                let kill_point = |&e: &u64| match split {
                    false => by_worker.iter().all(|&w| w < e),
                    true => by_worker[0] >= e && by_worker[1] < e,
                };
                if !epochs.is_empty() && epochs.iter().all(kill_point) {
                    break true;
                }
                if tried.elapsed() > Duration::from_millis(1500) {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            if found {
                break;
            }
            lock.batch_execute("ROLLBACK").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        run.0.kill().unwrap();
        run.0.wait().unwrap();
        // A commit the killed process had sent whole (`…; COMMIT`) waits for the lock in its
        // server session and would land after it: end those sessions first, as a kill lands
        // before a commit is sent.
        lock.batch_execute(&format!(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE '%{progress_schema}%'"
        ))
        .await
        .unwrap();
        lock.batch_execute("ROLLBACK").await.unwrap();
    });
    // Between the first read and the new one: every chunk's keys deleted, inserted again,
    // updated.
    src_exec(&[
        &format!("DELETE FROM {ns}.items WHERE id % 7 = 0"),
        &format!("INSERT INTO {ns}.items SELECT g, -g FROM generate_series(14, 80000, 14) g"),
        &format!("UPDATE {ns}.items SET v = v + 1 WHERE id % 5 = 0"),
        &format!("INSERT INTO {ns}.items VALUES (90001, 1)"),
    ]);
    let out =
        ferry().current_dir(dir.path()).env("FERRY_LOG", "ferry=info").args(["run", "-q", &bounded]).output().unwrap();
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = if split { "are read again for the others" } else { "record the new read" };
    assert!(stderr.contains(want), "the restart did not read a replayed chunk again as expected:\n{stderr}");
    let log = common::sql::pg_append_log(dst);
    let replayed = common::sql::replay_strictly(&log);
    assert_replayed_is_source(&replayed, ns);
}

/// The strict replay of an append log (`id → v`) equals `ns.items` on the source.
fn assert_replayed_is_source(replayed: &std::collections::BTreeMap<i64, i64>, ns: &str) {
    let got: Vec<String> = replayed.iter().map(|(id, v)| format!("{id}|{v}")).collect();
    let want: Vec<String> = common::sql::pg_text_rows(&src_url(), &format!("SELECT id, v FROM {ns}.items ORDER BY id"))
        .into_iter()
        .map(|r| r.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>().join("|"))
        .collect();
    assert_eq!(got.len(), want.len(), "rows after replaying the append log vs the source");
    assert!(got == want, "the replayed append log differs from the source");
}

/// A big table read as one chunk in `ctid` ranges by 2 sessions (ranges slowed down) while a
/// writer updates, inserts and deletes: its rows move between pages (full pages: an update
/// cannot stay on its page), so ranges read under different snapshots would see a row twice or
/// not at all. `keyed`: the table has a text primary key (no integer key to range over) and
/// the run is exactly-once, else it has no key (at-least-once: a restart could write rows
/// twice). `rewrite`: a `VACUUM FULL` once the first range is being read (every row gets
/// another ctid): the next range notices it and the chunk is read again. The append log
/// (with each change's source position: rows without a key have no sink worker of their own,
/// so the log's order is not the source's) replayed strictly in source order is the source.
fn ctid_ranges_case(ns: &str, keyed: bool, rewrite: bool) {
    let (dst, task) = (format!("{ns}_t"), ns.replace('_', "-"));
    forget_slot(&task);
    fresh_src_schema(ns);
    let (columns, semantics) = if keyed {
        ("k text PRIMARY KEY, id bigint NOT NULL, v bigint NOT NULL", "exactly-once")
    } else {
        ("id bigint NOT NULL, v bigint NOT NULL", "at-least-once")
    };
    src_exec(&[
        &format!("CREATE TABLE {ns}.items ({columns}) WITH (fillfactor = 100)"),
        &format!(
            "INSERT INTO {ns}.items ({}id, v) SELECT {}g, g FROM generate_series(1, 60000) g",
            if keyed { "k, " } else { "" },
            if keyed { "'k' || g, " } else { "" }
        ),
        &format!("ALTER TABLE {ns}.items REPLICA IDENTITY FULL"),
        // Not a key (not unique): only for the writer's lookups.
        &format!("CREATE INDEX ON {ns}.items (id)"),
    ]);
    Target::Pg.fresh_namespace(&dst);
    Target::Pg.exec(&[format!(
        "CREATE TABLE \"{dst}\".items ({}id bigint NOT NULL, v bigint NOT NULL, _op text, _pos text, _seq bigserial)",
        if keyed { "k text, " } else { "" }
    )]);
    let dir = workdir();
    let text = format!(
        "task: {task}\nsource:\n  type: postgres\n  url: {}\n  bounded: true\n  heartbeat_interval: 1s\ntarget:\n{}\
         tables:\n  include: ['{ns}\\.items']\nsemantics: {semantics}\nwrite_mode: append\n\
         metadata:\n  - {{column: _op, field: op_type}}\n  - {{column: _pos, field: position}}\nroute:\n  database: {dst}\n\
         runtime:\n  workers: 2\n  checkpoint_interval: 200ms\n  state: ./state\n",
        src_url(),
        Target::Pg.plan_section()
    );
    let p = write_plan(dir.path(), "plan.yaml", &text);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (stop, ns) = (stop.clone(), ns.to_string());
        move || {
            ferry::runtime::io_runtime().block_on(async {
                let c = common::sql::pg_client_at(&src_url()).await;
                let mut i = 0i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 2000 {
                    let sql = match i % 5 {
                        0 if keyed => format!("INSERT INTO {ns}.items VALUES ('k{0}', {0}, 0)", 100_000 + i),
                        0 => format!("INSERT INTO {ns}.items VALUES ({}, 0)", 100_000 + i),
                        4 => format!("DELETE FROM {ns}.items WHERE id = {}", 2 + i * 7 % 60_000),
                        _ => format!("UPDATE {ns}.items SET v = v + 1 WHERE id = {}", 1 + (i * 7919) % 60_000),
                    };
                    c.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
                    i += 1;
                }
                i
            })
        }
    });
    let rewriter = rewrite.then(|| {
        let ns = ns.to_string();
        std::thread::spawn(move || {
            ferry::runtime::io_runtime().block_on(async {
                let c = common::sql::pg_client_at(&src_url()).await;
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    let reading: i64 = c
                        .query_one(
                            &format!(
                                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT %{ns}%ctid%'"
                            ),
                            &[],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    if reading > 0 {
                        c.batch_execute(&format!("VACUUM FULL {ns}.items")).await.unwrap();
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                false
            })
        })
    });
    let out = ferry()
        .current_dir(dir.path())
        .env("FERRY_FAULT_CHUNK_DELAY_MS", "300")
        .env("FERRY_LOG", "ferry=info")
        .args(["run", "-q", &p])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The log without its colours.
    let mut log = String::new();
    let mut rest = String::from_utf8_lossy(&out.stderr).into_owned();
    while let Some(at) = rest.find('\u{1b}') {
        log.push_str(&rest[..at]);
        rest = rest[at..].split_once('m').map_or(String::new(), |(_, r)| r.to_string());
    }
    log.push_str(&rest);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("read in ctid ranges under one snapshot") && log.contains("sessions=2"), "{log}");
    if let Some(r) = rewriter {
        assert!(r.join().unwrap(), "no range read was seen");
        assert!(log.contains("the table was rewritten (VACUUM FULL"), "{log}");
    }
    let statements = writer.join().unwrap();
    assert!(statements >= 2000, "{statements}");
    ok(&run_in(dir.path(), &["run", "-q", &p]));
    // Snapshot rows (`chunk:seq`) first, then changes by commit LSN (one row per transaction).
    let mut log: Vec<(u64, (i64, i64, String))> = ferry::runtime::io_runtime().block_on(async {
        let c = common::sql::pg_client().await;
        c.query(&format!("SELECT id, v, _op, _pos FROM \"{dst}\".items ORDER BY _seq"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let pos: String = r.get(3);
                let lsn = match pos.split_once('/') {
                    Some((hi, lo)) => u64::from_str_radix(hi, 16).unwrap() << 32 | u64::from_str_radix(lo, 16).unwrap(),
                    None => 0,
                };
                (lsn, (r.get(0), r.get(1), r.get(2)))
            })
            .collect()
    });
    log.sort_by_key(|(lsn, _)| *lsn);
    let log: Vec<(i64, i64, String)> = log.into_iter().map(|(_, l)| l).collect();
    assert!(log.iter().filter(|l| l.2 != "insert").count() > 100, "too few changes streamed");
    let replayed = common::sql::replay_strictly(&log);
    assert_replayed_is_source(&replayed, ns);
}

#[test]
fn a_table_without_a_key_is_read_in_ctid_ranges_under_one_snapshot_while_updates_move_its_rows() {
    ctid_ranges_case("ctidnokey", false, false);
}

#[test]
fn a_table_rewritten_while_its_ctid_ranges_are_read_is_read_again_exactly_once() {
    ctid_ranges_case("ctidtext", true, true);
}
