//! Kafka benchmarks, side by side with the limits of the same machine in the same run, on the
//! private test servers (`scripts/servers start`, then export what it prints):
//!
//! - MariaDB snapshot of a sysbench-like table → Kafka (`debezium-json`, 2 workers,
//!   exactly-once and at-least-once) vs the broker's own producer benchmark
//!   (`org.apache.kafka.tools.ProducerPerformance`, `acks=all`, the same number of records of the
//!   mean size of ferry's messages, idempotent as ferry's producers are);
//! - Kafka (the messages ferry wrote) → PostgreSQL, 2 workers, exactly-once, vs the pipe
//!   `mariadb --quick -N -e 'SELECT …' | psql -c '\copy … from stdin'` of the same rows.
//!
//! Sizes: `FERRY_BENCH_KAFKA_ROWS` (500,000: each round writes that many messages of about
//! 600 bytes per mode; the topics are deleted after the case), `FERRY_BENCH_ROUNDS` (3).

mod common;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::process::Command;
use std::time::Duration;

fn brokers() -> String {
    std::env::var("FERRY_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        eprintln!("FERRY_TEST_KAFKA_BROKERS is not set: run `scripts/servers start` and export what it prints");
        std::process::exit(1)
    })
}

fn delete_topics(topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).set("log_level", "3").create().unwrap();
    let _ = futures::executor::block_on(admin.delete_topics(topics, &AdminOptions::new()));
    // Deletion is asynchronous on the broker: wait until the names are gone.
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers()).set("log_level", "3").create().unwrap();
    for _ in 0..200 {
        let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
        if !md.topics().iter().any(|t| topics.contains(&t.name()) && t.error().is_none()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Messages and bytes of `topic` (all partitions; the bytes from a sample of 2,000 values).
fn topic_stats(topic: &str) -> (i64, f64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", "bench")
        .set("isolation.level", "read_committed")
        .set("log_level", "3")
        .create()
        .unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    let mut ends = 0;
    for p in 0..parts {
        let (lo, hi) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
        ends += hi - lo;
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < 2000 {
        match c.poll(Duration::from_secs(5)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map_or(0, |p| p.len()) as u64;
            }
            Some(Err(e)) => panic!("{e}"),
            None => break,
        }
    }
    (ends, bytes as f64 / n.max(1) as f64)
}

fn main() {
    let rounds = env_u64("FERRY_BENCH_ROUNDS", 3) as usize;
    let rows = env_u64("FERRY_BENCH_KAFKA_ROWS", 500_000);
    let libs = std::env::var("FERRY_TEST_KAFKA_LIBS").expect("FERRY_TEST_KAFKA_LIBS (scripts/servers)");
    println!(
        "ferry Kafka: MariaDB 127.0.0.1:{} → Kafka {} → PostgreSQL; median of {rounds} interleaved rounds",
        port(),
        brokers()
    );
    ensure_table("kafka_src", rows);
    let b = brokers();
    let leg1 = |task: &str, semantics: &str| {
        format!(
            "task: {task}\nsource:\n  type: mariadb\n  url: {}\n  bounded: true\n  chunk_rows: 50000\ntarget:\n  type: kafka\n  brokers: {b}\n\
             format: debezium-json\n  topic: {task}\n  partitions: 4\ntables:\n  include: ['bench\\.kafka_src']\nsemantics: {semantics}\n\
             runtime:\n  checkpoint_interval: 1s\n",
            url()
        )
        .replace("\nformat:", "\n  format:")
    };
    let (eo, alo) = (leg1("bench_kafka_eo", "exactly-once"), leg1("bench_kafka_alo", "at-least-once"));
    // The record size of the producer benchmark: the mean of ferry's messages.
    ferry_run(&eo, 2);
    let (n, size) = topic_stats("bench_kafka_eo");
    // Offsets also count the transactions' commit markers.
    assert!(n as u64 >= rows, "{n} offsets in bench_kafka_eo for {rows} rows");
    set_row_bytes(size);
    delete_topics(&["bench_kafka_eo", "bench_kafka_perf"]);
    let perf = || {
        let mut cmd = Command::new("java");
        cmd.args(["-Xmx512m", "-cp", &format!("{libs}/*"), "org.apache.kafka.tools.ProducerPerformance"]);
        cmd.args(["--topic", "bench_kafka_perf", "--num-records", &rows.to_string(), "--record-size"]);
        cmd.args([&(size.round() as u64).to_string(), "--throughput", "-1", "--producer-props"]);
        cmd.args([
            &format!("bootstrap.servers={b}"),
            "acks=all",
            "linger.ms=20",
            "batch.size=1000000",
            "enable.idempotence=true",
        ]);
        let t = timed(cmd);
        delete_topics(&["bench_kafka_perf"]);
        t
    };
    let mut perf = perf;
    let mut ferry_eo = || {
        let t = ferry_run(&eo, 2);
        delete_topics(&["bench_kafka_eo"]);
        t
    };
    let mut ferry_alo = || {
        let t = ferry_run(&alo, 2);
        delete_topics(&["bench_kafka_alo"]);
        t
    };
    let r = interleaved(rounds, &mut [&mut perf, &mut ferry_eo, &mut ferry_alo]);
    let raw = rows as f64 / r[0].0;
    line("raw: kafka ProducerPerformance (acks=all)", rows, r[0].0, r[0].1, None, &r[0].2);
    line("ferry MariaDB → Kafka debezium-json, exactly-once", rows, r[1].0, r[1].1, Some(raw), &r[1].2);
    line("ferry MariaDB → Kafka debezium-json, at-least-once", rows, r[2].0, r[2].1, Some(raw), &r[2].2);

    // Kafka → PostgreSQL: the messages of one exactly-once run, read by every round.
    ferry_run(&eo, 2);
    set_row_bytes(text_bytes("SELECT * FROM bench.kafka_src") as f64 / rows as f64);
    psql("CREATE SCHEMA IF NOT EXISTS bench");
    let fresh = |t: &str| psql(&format!("DROP TABLE IF EXISTS bench.{t}; CREATE TABLE bench.{t} {PG_TABLE}"));
    let select =
        format!("mariadb --quick -N -h127.0.0.1 -P{} -uroot -e 'SELECT id, k, c, pad FROM bench.kafka_src'", port());
    let pipe =
        format!("{select} | psql -q -h 127.0.0.1 -p {} -U postgres -c '\\copy bench.kafka_raw from stdin'", pg_port());
    let leg2 = format!(
        "task: bench_kafka_pg\nsource:\n  type: kafka\n  brokers: {b}\n  topics: [bench_kafka_eo]\n  format: debezium-json\n  bounded: true\n\
         target:\n  type: postgres\n  url: {}\nroute:\n  database: bench\nsemantics: exactly-once\nruntime:\n  checkpoint_interval: 1s\n",
        pg_url()
    );
    let r = interleaved(
        rounds,
        &mut [
            &mut || {
                fresh("kafka_raw");
                let mut cmd = Command::new("bash");
                cmd.args(["-o", "pipefail", "-c", &pipe]);
                timed(cmd)
            },
            &mut || {
                fresh("kafka_src");
                ferry_run(&leg2, 2)
            },
        ],
    );
    let raw = rows as f64 / r[0].0;
    line("pipe: mariadb --quick | psql \\copy", rows, r[0].0, r[0].1, None, &r[0].2);
    line("ferry Kafka debezium-json → PostgreSQL, 2 workers, exactly-once", rows, r[1].0, r[1].1, Some(raw), &r[1].2);
    delete_topics(&["bench_kafka_eo"]);
}
