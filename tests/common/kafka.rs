//! Kafka helpers for integration tests: the private broker's address (scripts/servers), a
//! `read_committed` consumer that reads a topic to its end, a producer for test messages.
#![allow(dead_code)]

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// The private broker; the suite's script exports it.
pub fn brokers() -> String {
    super::mysql::url("FERRY_TEST_KAFKA_BROKERS")
}

/// One message as a consumer sees it.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
}

fn consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", "ferry-tests")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("log_level", "3")
        .create()
        .expect("a consumer")
}

/// Every committed message of `topic` (all partitions, each in offset order), read with
/// `read_committed` to the partitions' ends.
pub fn read_topic(topic: &str) -> Vec<Msg> {
    let c = consumer();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let parts = md.topics().first().map(|t| t.partitions().len() as i32).unwrap_or(0);
    let mut out = Vec::new();
    for p in 0..parts {
        let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(low)).unwrap();
        c.assign(&tpl).unwrap();
        let start = Instant::now();
        loop {
            let pos = c.position().unwrap().find_partition(topic, p).and_then(|e| e.offset().to_raw()).unwrap_or(0);
            if pos >= high {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "reading {topic}/{p} did not reach offset {high}");
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.expect("a message");
                out.push(Msg {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                });
                if m.offset() + 1 >= high {
                    break;
                }
            }
        }
    }
    out
}

/// Topic names on the broker that start with `prefix`.
pub fn topics_with_prefix(prefix: &str) -> Vec<String> {
    let c = consumer();
    let md = c.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    let mut v: Vec<String> =
        md.topics().iter().map(|t| t.name().to_string()).filter(|n| n.starts_with(prefix)).collect();
    v.sort();
    v
}

/// Writes `(key, value)` messages to `topic` (created by the broker on first use), flushed.
pub fn produce(topic: &str, msgs: &[(Option<&str>, Option<&str>)]) {
    let p: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).set("log_level", "3").create().expect("a producer");
    for (k, v) in msgs {
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic);
        if let Some(k) = k {
            r = r.key(*k);
        }
        if let Some(v) = v {
            r = r.payload(*v);
        }
        p.send(r).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// A suffix that makes this run's topic names new (the broker keeps topics between runs).
pub fn nonce() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{}{:09}", t.as_secs() % 100_000, t.subsec_nanos())
}
