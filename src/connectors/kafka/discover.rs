//! A Kafka source before the run: which partitions it reads, what tables its messages carry
//! (declared in the plan, or inferred from a sample), where a first run starts, where a
//! bounded run ends.

use super::client::{self, classify, KafkaClientError, REQUEST_TIMEOUT};
use super::config::{KafkaSource, StartFrom};
use super::decode::{self, Decoded, Sampled};
use crate::plan::{DiscoverError, SourceCatalog};
use crate::state::TaskState;
use ferry_operators::template::Template;
use ferry_operators::{Catalog, Column, TableName, TableSchema};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// One partition the source reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Part {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

fn fail(e: KafkaClientError) -> DiscoverError {
    DiscoverError { key: "source.brokers", transient: e.is_transient(), message: e.to_string() }
}

/// The topics the section names (a pattern: those the brokers have that match).
pub fn topics(cfg: &KafkaSource, consumer: &BaseConsumer) -> Result<Vec<String>, DiscoverError> {
    match &cfg.topic_pattern {
        Some(p) => {
            let re = regex::Regex::new(&format!("^(?:{p})$")).expect("validated");
            let all = client::topic_names(consumer, &cfg.brokers).map_err(fail)?;
            Ok(all.into_iter().filter(|t| re.is_match(t)).collect())
        }
        None => Ok(cfg.topics.clone()),
    }
}

/// Every partition of `topics`, in order; a named topic the brokers lack is an error.
pub fn partitions(cfg: &KafkaSource, consumer: &BaseConsumer, topics: &[String]) -> Result<Vec<Part>, DiscoverError> {
    let counts = client::partition_counts(consumer, &cfg.brokers, topics).map_err(fail)?;
    let mut out = Vec::new();
    for t in topics {
        match counts.get(t).copied().flatten() {
            Some(n) => out.extend((0..n).map(|p| Part { topic: t.clone(), partition: p })),
            None => {
                return Err(DiscoverError {
                    key: "source.topics",
                    transient: false,
                    message: format!("topic {t} does not exist on {}", cfg.brokers),
                })
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The catalog: declared tables, and those a sample of messages shows.
pub fn discover(cfg: &KafkaSource, datasource: &str) -> Result<SourceCatalog, DiscoverError> {
    let consumer = client::consumer(&cfg.connection()).map_err(fail)?;
    let topics = topics(cfg, &consumer)?;
    let parts = partitions(cfg, &consumer, &topics)?;
    let mut tables: BTreeMap<String, TableSchema> = BTreeMap::new();
    for (name, d) in &cfg.tables {
        let (db, t) = name.split_once('.').expect("validated");
        let columns = d
            .columns
            .iter()
            .map(|(c, ty)| {
                let ty = super::config::column_type(ty.as_str().expect("validated")).expect("validated");
                Column::new(c.clone(), ty, !d.key.contains(c))
            })
            .collect::<Vec<_>>();
        let primary_key = d.key.iter().map(|k| columns.iter().position(|c| &c.name == k).expect("validated")).collect();
        tables.insert(
            name.clone(),
            TableSchema { name: TableName::new(db, t), columns, primary_key, unique_keys: vec![], version: 1 },
        );
    }
    if cfg.sample > 0 {
        for (name, s) in sample(cfg, &consumer, &parts, datasource).map_err(fail)? {
            if tables.contains_key(&name) {
                continue;
            }
            let (db, t) = name.split_once('.').unwrap_or(("", &name));
            let mut schema = s.schema(TableName::new(db, t));
            // Declared key columns of an inferred table are not nullable.
            for &k in &schema.primary_key.clone() {
                schema.columns[k].nullable = false;
            }
            tables.insert(name, schema);
        }
    }
    Ok(SourceCatalog { catalog: Catalog { tables: tables.into_values().collect() }, ..Default::default() })
}

/// Reads up to `cfg.sample` messages per topic from the partitions' starts and gathers what
/// they say about each table, by `database.table`.
fn sample(
    cfg: &KafkaSource,
    consumer: &BaseConsumer,
    parts: &[Part],
    datasource: &str,
) -> Result<BTreeMap<String, Sampled>, KafkaClientError> {
    let format = cfg.format();
    let db_t = Template::parse(&cfg.database_template()).expect("validated");
    let tb_t = Template::parse(&cfg.table_template()).expect("validated");
    let mut per_topic: HashMap<&str, usize> = HashMap::new();
    for p in parts {
        *per_topic.entry(p.topic.as_str()).or_default() += 1;
    }
    let mut tpl = TopicPartitionList::new();
    let mut stop: HashMap<(String, i32), i64> = HashMap::new();
    for p in parts {
        let (low, high) = consumer
            .fetch_watermarks(&p.topic, p.partition, REQUEST_TIMEOUT)
            .map_err(|e| classify(&cfg.brokers, &format!("cannot read the offsets of {}", p.topic), &e))?;
        let budget = (cfg.sample / per_topic[p.topic.as_str()]).max(1) as i64;
        let end = high.min(low + budget);
        if end > low {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(low))
                .map_err(|e| classify(&cfg.brokers, "sample", &e))?;
            stop.insert((p.topic.clone(), p.partition), end);
        }
    }
    let mut out: BTreeMap<String, Sampled> = BTreeMap::new();
    if stop.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl).map_err(|e| classify(&cfg.brokers, "cannot read a sample", &e))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stop.is_empty() && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            // Partitions whose last messages are transaction markers end without a message.
            if let Ok(pos) = consumer.position() {
                for e in pos.elements() {
                    let key = (e.topic().to_string(), e.partition());
                    if stop.get(&key).is_some_and(|&end| e.offset().to_raw().is_some_and(|o| o >= end)) {
                        stop.remove(&key);
                    }
                }
            }
            continue;
        };
        let m = m.map_err(|e| classify(&cfg.brokers, "cannot read a sample", &e))?;
        let key = (m.topic().to_string(), m.partition());
        let Some(&end) = stop.get(&key) else { continue };
        if m.offset() + 1 >= end {
            stop.remove(&key);
        }
        let Ok(Decoded::Rows(msg, events)) = decode::envelope(format, m.payload()) else { continue };
        let stated = decode::stated_types(format, &msg);
        let keys = decode::key_fields(format, &msg, m.key());
        for ev in &events {
            let Some(fields) = decode::fields(format, &msg, ev) else { continue };
            let (Ok(db), Ok(t)) = (
                decode::render(&db_t, fields, m.topic(), datasource),
                decode::render(&tb_t, fields, m.topic(), datasource),
            ) else {
                continue;
            };
            out.entry(format!("{db}.{t}")).or_default().add(ev, &stated, &keys);
        }
    }
    let _ = consumer.unassign();
    Ok(out)
}

/// Where each partition starts on a first run, resolved once and kept in the state store
/// (`source/kafka-start.json`) so a restart before the first checkpoint starts at the same
/// offsets; partitions that appear later start at their beginning.
pub fn start_offsets(
    cfg: &KafkaSource,
    consumer: &BaseConsumer,
    parts: &[Part],
    state: &TaskState,
    process: usize,
) -> Result<BTreeMap<Part, i64>, String> {
    let path = state.path("source/kafka-start.json");
    let read = || -> Result<Option<Vec<(Part, i64)>>, String> {
        match state.store().get(&path).map_err(|e| e.to_string())? {
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| format!("{path}: {e}")),
            None => Ok(None),
        }
    };
    let mut known: BTreeMap<Part, i64> = read()?.unwrap_or_default().into_iter().collect();
    if process != 0 {
        // Process 0 records them; wait for it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while parts.iter().any(|p| !known.contains_key(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            known = read()?.unwrap_or_default().into_iter().collect();
        }
    }
    let first = known.is_empty();
    let mut changed = false;
    for p in parts {
        if known.contains_key(p) {
            continue;
        }
        let (low, high) = consumer
            .fetch_watermarks(&p.topic, p.partition, REQUEST_TIMEOUT)
            .map_err(|e| format!("cannot read the offsets of {} partition {}: {e}", p.topic, p.partition))?;
        let at = if first && cfg.start == StartFrom::Latest { high } else { low };
        known.insert(p.clone(), at);
        changed = true;
    }
    if changed && process == 0 {
        let list: Vec<(&Part, &i64)> = known.iter().collect();
        state.store().put(&path, serde_json::to_vec_pretty(&list).expect("serializes")).map_err(|e| e.to_string())?;
    }
    Ok(known)
}

/// The end offsets of `parts` now (a bounded run stops there).
pub fn end_offsets(cfg: &KafkaSource, consumer: &BaseConsumer, parts: &[Part]) -> Result<BTreeMap<Part, i64>, String> {
    parts
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(&p.topic, p.partition, REQUEST_TIMEOUT)
                .map(|(_, high)| (p.clone(), high))
                .map_err(|e| {
                    format!(
                        "Kafka at {}: cannot read the end of {} partition {}: {e}",
                        cfg.brokers, p.topic, p.partition
                    )
                })
        })
        .collect()
}
