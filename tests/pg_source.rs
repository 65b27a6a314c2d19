//! The PostgreSQL source on the private PostgreSQL (`wal_level=logical`): snapshot and
//! logical replication under concurrent writes into MariaDB and PostgreSQL, SIGKILLs during
//! the snapshot and the stream, unchanged TOAST values, schema changes, slot failures, WAL
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

/// Starts `ferry run -q plan` in `dir` with `env`.
fn spawn(dir: &std::path::Path, plan: &str, env: &[(&str, &str)]) -> KillOnDrop {
    KillOnDrop(ferry().current_dir(dir).envs(env.iter().copied()).args(["run", "-q", plan]).spawn().unwrap())
}

/// Waits until `cond` holds while the run goes on, then kills it with SIGKILL.
fn kill_when(run: &mut KillOnDrop, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(run.0.try_wait().unwrap().is_none(), "the run ended before {what}");
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    // No temporary slot of a killed reader is left behind.
    let left = src_query_one("SELECT count(*) FROM pg_replication_slots WHERE temporary").unwrap();
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
}
