//! The files target on S3-compatible storage, next to the raw limit of the same machine in the
//! same run, against the private test servers (`scripts/servers start`, then export what it
//! prints; the S3-compatible server is s3s-fs, objects on the local disk):
//!
//! - raw: the bytes of ferry's JSON lines output of the sysbench-like table, uploaded as one
//!   object with a plain multipart upload (object_store's `WriteMultipart`, 8 MiB parts, the
//!   same client library and part size ferry uses);
//! - ferry snapshot of the sysbench-like table (`FERRY_BENCH_ROWS`, default 2,000,000) into S3
//!   files, JSON lines and Parquet, exactly-once (commit manifests), state store on S3 too,
//!   1 and 2 workers; peak memory of the whole process.
//!
//! `FERRY_BENCH_ROUNDS` (3) interleaved rounds, medians printed.

mod common;

use common::*;
use object_store::ObjectStoreExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run through scripts/bench"))
}

/// A fresh bucket on the test server (a directory of its root).
fn bucket(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let b = format!("bench-{tag}-{}", nanos % 1_000_000_000_000);
    std::fs::create_dir_all(Path::new(&var("FERRY_TEST_S3_DIR")).join(&b)).unwrap();
    b
}

fn plan(bucket: &str, format: &str) -> String {
    format!(
        "task: bench_s3\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  heartbeat: 100ms\n  chunk_rows: 20000\n\
         target:\n  type: files\n  path: s3://{bucket}/out\n  format: {format}\ntables:\n  include: ['bench\\.sbtest1']\n\
         semantics: exactly-once\nwrite_mode: append\nruntime:\n  checkpoint_interval: 1s\n  state: s3://{bucket}/state\n\
         s3:\n  endpoint: {}\n  region: us-east-1\n  access_key_id: {}\n  secret_access_key: ${{env:FERRY_TEST_S3_SECRET}}\n",
        url(),
        var("FERRY_TEST_S3_ENDPOINT"),
        var("FERRY_TEST_S3_KEY")
    )
}

fn disk(bucket: &str) -> PathBuf {
    Path::new(&var("FERRY_TEST_S3_DIR")).join(bucket)
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { bytes_under(&e.path()) } else { m.len() };
    }
    total
}

/// Concatenates every part of the output (in name order) into one buffer.
fn output_bytes(bucket: &str) -> Vec<u8> {
    let dir = disk(bucket).join("out/bench/sbtest1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().flat_map(|f| std::fs::read(f).unwrap()).collect()
}

/// Uploads `data` as one object with a plain multipart upload; wall seconds.
fn multipart_upload(data: &bytes::Bytes) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let b = bucket("raw");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&b)
        .with_endpoint(var("FERRY_TEST_S3_ENDPOINT"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(var("FERRY_TEST_S3_KEY"))
        .with_secret_access_key(var("FERRY_TEST_S3_SECRET"))
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        let upload = store.put_multipart(&object_store::path::Path::from("all.jsonl")).await.unwrap();
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, 8 << 20);
        for piece in data.chunks(8 << 20) {
            w.wait_for_capacity(2).await.unwrap();
            w.write(piece);
        }
        w.finish().await.unwrap();
    });
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(disk(&b));
    secs
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_u64("FERRY_BENCH_ROWS", 2_000_000);
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    println!(
        "ferry files target on S3 (s3s-fs at {}), MariaDB snapshot of the sysbench-like table; median of {rounds} \
         interleaved rounds; MB/s as the JSON lines output's bytes",
        var("FERRY_TEST_S3_ENDPOINT")
    );
    ensure_table("sbtest1", rows);
    // One run first: the JSON lines output whose bytes the raw upload sends.
    let first = bucket("jsonl");
    ferry_run(&plan(&first, "jsonl"), 1);
    let data = bytes::Bytes::from(output_bytes(&first));
    let _ = std::fs::remove_dir_all(disk(&first));
    set_row_bytes(data.len() as f64 / rows as f64);
    let parquet_bytes = std::cell::Cell::new(0u64);
    let mut raw = || (multipart_upload(&data), 0.0);
    let ferry_case = |format: &'static str, workers: usize| {
        let size = &parquet_bytes;
        move || {
            let b = bucket(format);
            let r = ferry_run(&plan(&b, format), workers);
            if format == "parquet" {
                size.set(bytes_under(&disk(&b).join("out/bench/sbtest1")));
            }
            let _ = std::fs::remove_dir_all(disk(&b));
            r
        }
    };
    let (mut j1, mut j2) = (ferry_case("jsonl", 1), ferry_case("jsonl", 2));
    let (mut p1, mut p2) = (ferry_case("parquet", 1), ferry_case("parquet", 2));
    let r = interleaved(rounds, &mut [&mut raw, &mut j1, &mut j2, &mut p1, &mut p2]);
    let parquet_bytes = parquet_bytes.get();
    let raw_rate = rows as f64 / r[0].0;
    line(
        &format!("raw: multipart upload of the JSON lines bytes ({} MB)", data.len() / 1_000_000),
        rows,
        r[0].0,
        r[0].1,
        None,
        &r[0].2,
    );
    let names = [
        "ferry snapshot → S3 JSON lines, 1 worker",
        "ferry snapshot → S3 JSON lines, 2 workers",
        "ferry snapshot → S3 Parquet, 1 worker",
        "ferry snapshot → S3 Parquet, 2 workers",
    ];
    for (name, (secs, peak, cpu)) in names.iter().zip(&r[1..]) {
        line(name, rows, *secs, *peak, Some(raw_rate), cpu);
    }
    println!(
        "Parquet output: {} MB ({:.0}% of the JSON lines bytes)",
        parquet_bytes / 1_000_000,
        parquet_bytes as f64 * 100.0 / data.len() as f64
    );
}
