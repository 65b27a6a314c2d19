//! Micro-benchmarks of the per-row hot paths, in elements per second on one thread, over
//! sysbench-like rows (id BIGINT, k INT, c CHAR(120), pad CHAR(60)):
//!
//! - router: `Change::route_hash` (the exchange by `(table, key)`), integer and text keys;
//! - filter: a compiled row filter (`k > … AND c LIKE …`) evaluated per row;
//! - sink row encoding: a row as MySQL `LOAD DATA` text, PostgreSQL `COPY` text, a MySQL
//!   `INSERT` value list, and a `files` JSON line.
//!
//! `cargo bench --bench hot_paths`; `FERRY_BENCH_ELEMENTS` (default 1,000,000) rows per case,
//! median of 5 runs. Binlog row decoding is measured end to end by `cargo bench --bench mysql`
//! (its cell decoder is private to the binlog reader).

use ferry::connectors::sql::encode::Dialect;
use ferry_operators::expr::{EvalContext, Expr};
use ferry_operators::{json, Change, Column, ColumnType, Op, Position, TableName, TableSchema, Value};
use std::hint::black_box;
use std::time::Instant;

fn schema(text_key: bool) -> TableSchema {
    let id = if text_key {
        ColumnType::String { max_chars: Some(36), fixed: false }
    } else {
        ColumnType::Int { bits: 64, unsigned: false }
    };
    TableSchema {
        name: TableName::new("bench", "sbtest1"),
        columns: vec![
            Column::new("id", id, false),
            Column::new("k", ColumnType::Int { bits: 32, unsigned: false }, false),
            Column::new("c", ColumnType::String { max_chars: Some(120), fixed: true }, false),
            Column::new("pad", ColumnType::String { max_chars: Some(60), fixed: true }, false),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
        version: 1,
    }
}

/// Sysbench-like rows: `c` and `pad` are groups of digits joined by dashes.
fn rows(n: usize, text_key: bool) -> Vec<Change> {
    let digits = |seed: usize, groups: usize| {
        (0..groups)
            .map(|g| format!("{:011}", (seed * 2_654_435_761 + g * 97) % 100_000_000_000))
            .collect::<Vec<_>>()
            .join("-")
    };
    (0..n)
        .map(|i| {
            let id = if text_key { Value::Text(format!("{:08x}-{i:027}", i * 31)) } else { Value::Int(i as i64) };
            let row = vec![
                id,
                Value::Int((i * 7 % 1_000_000) as i64),
                Value::Text(digits(i, 10)),
                Value::Text(digits(i + 1, 5)),
            ];
            Change {
                table: 0,
                op: Op::Insert,
                before: None,
                after: Some(row),
                pos: Position::None,
                commit_micros: 0,
                schema: None,
            }
        })
        .collect()
}

/// Runs `f` over all elements 5 times; prints the median elements/s (and MB/s of output).
fn case(name: &str, n: usize, mut f: impl FnMut() -> usize) {
    let mut runs: Vec<(f64, usize)> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let bytes = f();
            (start.elapsed().as_secs_f64(), bytes)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, bytes) = runs[2];
    let mb = if bytes > 0 { format!("{:>8.1} MB/s", bytes as f64 / secs / 1e6) } else { String::new() };
    println!("{name:<44} {n:>9} elements {:>7.3}s {:>13.0} elements/s {mb}", secs, n as f64 / secs);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = std::env::var("FERRY_BENCH_ELEMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    println!("ferry hot paths, one thread, sysbench-like rows; median of 5 runs");
    let (int_schema, text_schema) = (schema(false), schema(true));
    let int_rows = rows(n, false);
    let text_rows = rows(n, true);

    case("router: route_hash, BIGINT key", n, || {
        black_box(int_rows.iter().fold(0u64, |a, c| a ^ c.route_hash(&int_schema)));
        0
    });
    case("router: route_hash, VARCHAR(36) key", n, || {
        black_box(text_rows.iter().fold(0u64, |a, c| a ^ c.route_hash(&text_schema)));
        0
    });

    let filter = Expr::compile("k > 500000 AND c LIKE '0%'", &int_schema).expect("the filter compiles");
    let pos = Position::None;
    let cx = EvalContext {
        op: Op::Insert,
        commit_micros: 0,
        now_micros: 0,
        datasource: "bench",
        database: "bench",
        schema: None,
        table: "sbtest1",
        position: &pos,
    };
    case("filter: k > 500000 AND c LIKE '0%'", n, || {
        black_box(int_rows.iter().filter(|c| filter.eval_bool(c.image(), &cx).unwrap_or(false)).count());
        0
    });

    let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut encode_bulk = |d: Dialect| {
        let mut bytes = 0;
        for c in &int_rows {
            out.clear();
            for (i, v) in c.image().iter().enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                d.bulk_field(v, &mut out).expect("encodes");
            }
            out.push(b'\n');
            bytes += black_box(&out).len();
        }
        bytes
    };
    case("encode: MySQL LOAD DATA text", n, || encode_bulk(Dialect::Mysql));
    case("encode: PostgreSQL COPY text", n, || encode_bulk(Dialect::Postgres));
    let mut sql = String::with_capacity(1 << 20);
    case("encode: MySQL INSERT values", n, || {
        let mut bytes = 0;
        for c in &int_rows {
            sql.clear();
            sql.push('(');
            for (i, v) in c.image().iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                Dialect::Mysql.literal(v, &mut sql).expect("encodes");
            }
            sql.push(')');
            bytes += black_box(&sql).len();
        }
        bytes
    });
    let mut line: Vec<u8> = Vec::with_capacity(1 << 20);
    case("encode: files JSON values", n, || {
        let mut bytes = 0;
        for c in &int_rows {
            line.clear();
            line.push(b'[');
            for (i, v) in c.image().iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                json::write_value(v, &mut line);
            }
            line.extend_from_slice(b"]\n");
            bytes += black_box(&line).len();
        }
        bytes
    });
}
