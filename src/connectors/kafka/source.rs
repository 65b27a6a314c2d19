//! The Kafka source operator: partition `i` (of the prepared list) is read by worker
//! `i mod peers`, from the offset of the newest manifest (or the recorded first start).
//!
//! ```text
//!  reader thread (per worker)                       operator
//!  BaseConsumer, read_committed, assigned ──batches──► stamps changes with the open epoch;
//!  partitions; each message decoded into   (bounded   every message is atomic: an epoch ends
//!  changes (or dirty, or skipped)           channel)  between two messages; the boundary
//!                                                     records each partition's next offset
//! ```
//!
//! A replayed epoch ends exactly at its recorded offsets: messages past a partition's
//! recorded offset wait for the next epoch. A bounded run ends when every partition has
//! reached the end offset it had when the run started.

use super::config::{Format, KafkaSource};
use super::decode::{self, Decoded};
use super::discover::Part;
use crate::checkpoint::Next;
use crate::connector::SourceCtx;
use crate::plan::Compiled;
use crate::runtime::{DirtyArchive, TaskError};
use ferry_operators::template::Template;
use ferry_operators::{Change, Position, TableId, TableName};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message as _, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

/// What the reader hands the operator.
enum Item {
    /// One message: its partition (index), offset and changes (none: skipped or dirty).
    Msg { part: u32, offset: i64, changes: Vec<Change> },
    /// Every partition reached its end offset (bounded runs).
    End,
}

/// What a run's workers are built from.
#[derive(Debug, Clone)]
pub struct KafkaRun {
    /// The section.
    pub cfg: KafkaSource,
    /// Every partition, in order (index = position).
    pub parts: Vec<Part>,
    /// Where a partition without a checkpoint starts.
    pub start: BTreeMap<Part, i64>,
    /// Where a bounded run ends.
    pub end: Option<BTreeMap<Part, i64>>,
}

fn offset_of(v: &serde_json::Value) -> Option<(Part, i64)> {
    Some((
        Part { topic: v["topic"].as_str()?.to_string(), partition: v["partition"].as_i64()? as i32 },
        v["offset"].as_i64()?,
    ))
}

/// Builds the Kafka source of this worker.
pub fn kafka_source<'s>(scope: Scope<'s, u64>, cx: &SourceCtx, run: KafkaRun) -> StreamVec<'s, u64, Change> {
    let index = scope.index();
    let peers = scope.peers();
    let plan = cx.plan.clone();
    let (metrics, failure) = (cx.metrics.clone(), cx.failure.clone());
    let mut epochs = cx.epochs(index, peers);
    let interval = Duration::from_millis(plan.plan.checkpoint_ms);
    let mine: Vec<u32> = (0..run.parts.len() as u32).filter(|i| *i as usize % peers == index).collect();
    // Next offset per partition: the manifest's, else the first start's.
    let restored: HashMap<Part, i64> = cx.restore.manifest.offsets.values().filter_map(offset_of).collect();
    let mut next: BTreeMap<u32, i64> = mine
        .iter()
        .map(|&i| {
            let p = &run.parts[i as usize];
            (i, restored.get(p).copied().or_else(|| run.start.get(p).copied()).unwrap_or(0))
        })
        .collect();
    let start_epoch = cx.restore.start_epoch();
    let dirty = cx.dirty.clone();
    let reader_failure = cx.failure.clone();
    source(scope, "Kafka", move |cap, info| {
        let mut cap = Some(cap);
        if let Some(c) = cap.as_mut() {
            c.downgrade(&start_epoch);
        }
        if mine.is_empty() {
            cap = None;
        }
        let activator = scope.worker().sync_activator_for(info.address.to_vec());
        let mut rx: Option<Receiver<Vec<Item>>> = None;
        if cap.is_some() {
            let (tx, r) = sync_channel::<Vec<Item>>(64);
            rx = Some(r);
            let reader = Reader {
                run: run.clone(),
                plan: plan.clone(),
                mine: mine.clone(),
                from: next.clone(),
                dirty: dirty.clone(),
                tx,
                activator,
            };
            let f = reader_failure.clone();
            let spawned = std::thread::Builder::new().name(format!("ferry-kafka-{index}")).spawn(move || {
                if let Err(e) = reader.run() {
                    f.report(e);
                }
            });
            if let Err(e) = spawned {
                reader_failure.report(TaskError::transient(format!("Kafka: the reader's thread cannot start: {e}")));
            }
        }
        let mut pending: VecDeque<Item> = VecDeque::new();
        let mut deferred: VecDeque<Item> = VecDeque::new();
        let mut ended = false;
        let mut deadline = Instant::now() + interval;
        let self_activator = scope.activator_for(info.address);
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            if let Some(r) = rx.as_ref() {
                loop {
                    match r.try_recv() {
                        Ok(batch) => pending.extend(batch),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            // A bounded reader ends after handing over its end marker.
                            let end_seen = ended || pending.iter().any(|i| matches!(i, Item::End));
                            if !end_seen && !failure.is_set() {
                                failure.report(TaskError::transient("Kafka: the reader stopped"));
                            }
                            rx = None;
                            break;
                        }
                    }
                }
            }
            // The recorded boundary of a replayed epoch: next offsets by partition.
            let target: Option<HashMap<u32, i64>> = epochs.replaying(epoch).map(|b| {
                let by_part: HashMap<Part, i64> = b.offsets.values().filter_map(offset_of).collect();
                mine.iter().filter_map(|&i| Some((i, *by_part.get(&run.parts[i as usize])?))).collect()
            });
            let mut produced = 0usize;
            {
                let mut session = output.session(&*c);
                while produced < 8192 {
                    let Some(item) = pending.pop_front() else { break };
                    match item {
                        Item::End => ended = true,
                        Item::Msg { part, offset, mut changes } => {
                            if target.as_ref().and_then(|t| t.get(&part)).is_some_and(|&t| offset >= t) {
                                deferred.push_back(Item::Msg { part, offset, changes });
                                continue;
                            }
                            next.insert(part, offset + 1);
                            produced += changes.len().max(1);
                            if !changes.is_empty() {
                                metrics.rows_in.fetch_add(changes.len() as u64, Ordering::Relaxed);
                                session.give_container(&mut changes);
                            }
                        }
                    }
                }
            }
            let exhausted = ended && pending.is_empty() && deferred.is_empty();
            let close = match &target {
                Some(t) => t.iter().all(|(p, &o)| next.get(p).is_some_and(|&n| n >= o)),
                None => exhausted || Instant::now() >= deadline || epochs.stop_due(),
            };
            if close {
                let offsets = next
                    .iter()
                    .map(|(&i, &o)| {
                        let p = &run.parts[i as usize];
                        (i, serde_json::json!({ "topic": p.topic, "partition": p.partition, "offset": o }))
                    })
                    .collect();
                let done = exhausted && !epochs.replays_after_this();
                match epochs.close(epoch, offsets, done) {
                    Ok(Next::Open(n)) => {
                        c.downgrade(&n);
                        metrics.open_epoch(n);
                        deadline = Instant::now() + interval;
                        // Messages held for this epoch's end go first in the next.
                        while let Some(i) = deferred.pop_back() {
                            pending.push_front(i);
                        }
                        self_activator.activate();
                    }
                    Ok(Next::End) => {
                        cap = None;
                        rx = None;
                        return;
                    }
                    Err(e) => {
                        failure.report(e);
                        return;
                    }
                }
            }
            if !pending.is_empty() {
                self_activator.activate();
            } else if target.is_none() {
                self_activator.activate_after(deadline.saturating_duration_since(Instant::now()));
            }
        }
    })
}

/// The reader thread of one worker.
struct Reader {
    run: KafkaRun,
    plan: Arc<Compiled>,
    mine: Vec<u32>,
    from: BTreeMap<u32, i64>,
    dirty: DirtyArchive,
    tx: SyncSender<Vec<Item>>,
    activator: timely::scheduling::SyncActivator,
}

impl Reader {
    fn run(self) -> Result<(), TaskError> {
        let cfg = &self.run.cfg;
        let consumer: BaseConsumer = super::client::consumer(&cfg.connection()).map_err(|e| {
            if e.is_transient() {
                TaskError::transient(e)
            } else {
                TaskError::definite(e)
            }
        })?;
        let mut tpl = TopicPartitionList::new();
        let mut index: HashMap<(String, i32), u32> = HashMap::new();
        for &i in &self.mine {
            let p = &self.run.parts[i as usize];
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(self.from[&i]))
                .map_err(|e| TaskError::definite(format!("Kafka: {e}")))?;
            index.insert((p.topic.clone(), p.partition), i);
        }
        consumer.assign(&tpl).map_err(|e| TaskError::transient(format!("Kafka: cannot assign partitions: {e}")))?;
        let ends: Option<HashMap<u32, i64>> = self.run.end.as_ref().map(|end| {
            self.mine.iter().map(|&i| (i, end.get(&self.run.parts[i as usize]).copied().unwrap_or(0))).collect()
        });
        let mut decoder = Decoder::new(&self.plan, cfg);
        let mut reached: HashSet<u32> = HashSet::new();
        let mut batch: Vec<Item> = Vec::with_capacity(256);
        let mut last_send = Instant::now();
        // Partitions that start at their end are there already.
        if let Some(ends) = &ends {
            reached.extend(self.mine.iter().filter(|i| self.from.get(i).is_some_and(|&f| f >= ends[i])));
        }
        let mut idle = true;
        loop {
            // A bounded run: partitions at their end. Only checked when the consumer has
            // nothing to hand (positions move past transaction markers, which no message
            // shows; asking for positions takes librdkafka's locks).
            if let (Some(ends), true) = (&ends, idle) {
                if reached.len() < self.mine.len() {
                    if let Ok(pos) = consumer.position() {
                        for e in pos.elements() {
                            if let (Some(&i), Some(o)) =
                                (index.get(&(e.topic().to_string(), e.partition())), e.offset().to_raw())
                            {
                                if o >= ends[&i] {
                                    reached.insert(i);
                                }
                            }
                        }
                    }
                }
            }
            if ends.is_some() && reached.len() == self.mine.len() {
                batch.push(Item::End);
                let _ = self.tx.send(std::mem::take(&mut batch));
                self.activator.activate().ok();
                return Ok(());
            }
            idle = false;
            match consumer.poll(Duration::from_millis(if batch.is_empty() { 100 } else { 1 })) {
                Some(Ok(m)) => {
                    let Some(&part) = index.get(&(m.topic().to_string(), m.partition())) else { continue };
                    if ends.as_ref().is_some_and(|e| m.offset() >= e[&part]) {
                        reached.insert(part);
                        continue;
                    }
                    let ts = match m.timestamp() {
                        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
                        Timestamp::NotAvailable => None,
                    };
                    let changes = decoder.decode(
                        part,
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        m.key(),
                        m.payload(),
                        ts,
                        &self.dirty,
                    );
                    batch.push(Item::Msg { part, offset: m.offset(), changes });
                    if ends.as_ref().is_some_and(|e| m.offset() + 1 >= e[&part]) {
                        reached.insert(part);
                    }
                }
                Some(Err(e)) => {
                    return Err(TaskError::transient(format!("Kafka at {}: {e}", cfg.brokers)));
                }
                None => idle = true,
            }
            if !batch.is_empty() && (batch.len() >= 256 || last_send.elapsed() >= Duration::from_millis(2)) {
                if self.tx.send(std::mem::take(&mut batch)).is_err() {
                    return Ok(());
                }
                self.activator.activate().ok();
                last_send = Instant::now();
            } else if batch.is_empty() {
                last_send = Instant::now();
            }
        }
    }
}

/// Messages into changes of the plan's tables.
struct Decoder {
    format: Format,
    db: Template,
    table: Template,
    datasource: String,
    plan: Arc<Compiled>,
    tables: HashMap<(String, String), TableId>,
    skipped_once: HashSet<String>,
}

impl Decoder {
    fn new(plan: &Arc<Compiled>, cfg: &KafkaSource) -> Decoder {
        let tables = plan.catalog.ids_by_db_table();
        Decoder {
            format: cfg.format(),
            db: Template::parse(&cfg.database_template()).expect("validated"),
            table: Template::parse(&cfg.table_template()).expect("validated"),
            datasource: plan.plan.source_name.clone(),
            plan: plan.clone(),
            tables,
            skipped_once: HashSet::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decode(
        &mut self,
        part: u32,
        topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        ts: Option<i64>,
        dirty: &DirtyArchive,
    ) -> Vec<Change> {
        let place = format!("{topic}/{partition}@{offset}");
        let bad = |table: &str, why: &str| {
            tracing::warn!(place = %place, table, reason = why, "Kafka message to the dirty archive");
            dirty.record_raw("source", table, &place, value.unwrap_or_default(), why);
        };
        let _ = key;
        let (msg, events) = match decode::envelope(self.format, value) {
            Ok(Decoded::Rows(msg, events)) => (msg, events),
            Ok(Decoded::Skip(what)) => {
                if self.skipped_once.insert(format!("{topic}:{what}")) {
                    tracing::info!(topic, what, "Kafka messages skipped (nothing to copy)");
                }
                return Vec::new();
            }
            Err(why) => {
                bad("", &why);
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(events.len());
        for ev in &events {
            let Some(fields) = decode::fields(self.format, &msg, ev) else { continue };
            let names = decode::render(&self.db, fields, topic, &self.datasource)
                .and_then(|d| Ok((d, decode::render(&self.table, fields, topic, &self.datasource)?)));
            let (db, t) = match names {
                Ok(n) => n,
                Err(why) => {
                    bad("", &why);
                    continue;
                }
            };
            let Some(&id) = self.tables.get(&(db.clone(), t.clone())) else {
                let name = TableName::new(db.clone(), t.clone());
                if self.plan.selects_table(&name) {
                    bad(&name.to_string(), &format!(
                        "table {name} is neither declared under `source.tables` nor in the sample ferry read at the start: declare it"
                    ));
                }
                continue;
            };
            let commit_micros = ev.commit_ms.or(ts).unwrap_or(0).saturating_mul(1000);
            let pos = Position::Seq { partition: part, seq: offset as u64 };
            match decode::change(id, self.plan.catalog.get(id), ev, pos, commit_micros) {
                Ok(c) => out.push(c),
                Err(why) => bad(&format!("{db}.{t}"), &why),
            }
        }
        out
    }
}
